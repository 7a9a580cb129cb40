#include "ops/conv_padding.h"

#include <algorithm>

namespace bnn2onnx {

void PaddingKinds::UseColumns(int64_t out_c) {
  column_kinds.assign(pixel_kinds.begin(), pixel_kinds.end());
  filter_offsets.assign(static_cast<size_t>(out_c * GemmOutput::kKinds), 0);
  for (int64_t k = 0; k <= static_cast<int64_t>(kinds.size()); ++k) {
    for (int64_t o = 0; o < out_c; ++o) filter_offsets[o * GemmOutput::kKinds + k] = offsets[k * out_c + o];
  }
}

PaddingKinds MakePaddingKinds(const ConvGeometry& g, const PackedFilter& f, const Window& w, int64_t out_h,
                              int64_t out_w) {
  PaddingKinds padding;
  if (g.padding_correction == 0) return padding;
  const int64_t pixels = out_h * out_w, out_c = f.out_channels;
  padding.pixel_kinds.assign(static_cast<size_t>(PanelWords(pixels, 1)), 0);
  for (PixelCursor at(0, out_w); at.oh < out_h; at.Next()) {
    if (InsideInput(g, w, at.oh, at.ow)) continue;
    const PaddedTaps t = PaddedTapsAt(g, w, at.oh, at.ow);
    auto kind = std::find(padding.kinds.begin(), padding.kinds.end(), t);
    if (kind == padding.kinds.end()) kind = padding.kinds.insert(kind, t);
    padding.pixel_kinds[at.oh * out_w + at.ow] = static_cast<int32_t>(kind - padding.kinds.begin() + 1);
  }
  const int64_t kinds = static_cast<int64_t>(padding.kinds.size()) + 1;
  padding.offsets.assign(static_cast<size_t>(kinds * out_c), 0);
  for (int64_t k = 1; k < kinds; ++k) {
    const PaddedTaps& t = padding.kinds[k - 1];
    for (int64_t kh = 0; kh < f.kernel_h; ++kh) {
      for (int64_t kw = 0; kw < f.kernel_w; ++kw) {
        if (t.Inside(kh, kw, f.kernel_h, f.kernel_w)) continue;
        const int64_t tap = kh * f.kernel_w + kw;
        for (int64_t o = 0; o < out_c; ++o) {
          padding.offsets[k * out_c + o] -= g.padding_correction * f.tap_sum[o * f.Taps() + tap];
        }
      }
    }
  }
  return padding;
}

}  // namespace bnn2onnx
