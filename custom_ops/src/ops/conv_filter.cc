#include "ops/conv_filter.h"

#include "kernels/bgemm.h"
#include "kernels/bitpacking.h"

namespace bnn2onnx {
namespace {

// The filter's nibble forms.
void PrepareNibbles(PackedFilter& f, const ConvGeometry& g, const NibbleKernel& nibbles) {
  const int64_t per_group = f.out_channels / g.group, group_words = PanelWords(per_group, f.field_words);
  f.nibble_rows.resize(static_cast<size_t>(f.out_channels * NibblePositions(f.field_words)));
  nibbles.rows(f.rows.data(), f.field_words, 1, f.out_channels, f.field_words, f.nibble_rows.data());
  const int64_t group_bytes = GroupNibbleBytes(f, per_group);
  f.nibble_panels.resize(static_cast<size_t>(g.group * group_bytes));
  for (int64_t grp = 0; grp < g.group; ++grp) {
    nibbles.panels(f.panels.data() + grp * group_words, per_group, f.field_words,
                   f.nibble_panels.data() + grp * group_bytes);
  }
}

}  // namespace

PackedFilter PrepareFilter(const TensorIn& w, const ConvGeometry& g, const NibbleKernel* nibbles) {
  CheckType(w, "weights (input 1)", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32);
  CheckRank(w, "weights (input 1)", 4);
  PackedFilter f;
  f.out_channels = w.shape[0], f.kernel_h = w.shape[1], f.kernel_w = w.shape[2];
  Check(f.out_channels >= 1 && f.out_channels % g.group == 0, "weights (input 1) shape ", ShapeStr(w.shape),
        ": output channels must be >= 1 and a multiple of group=", g.group);
  Check(f.kernel_h >= 1 && f.kernel_w >= 1 && f.kernel_h <= kMaxDim && f.kernel_w <= kMaxDim,
        "weights (input 1) shape ", ShapeStr(w.shape), ": kernel size must be >= 1");
  Check(w.shape[3] == g.words_per_group, "weights (input 1) shape ", ShapeStr(w.shape), " has ", w.shape[3],
        " words per tap but channels_in=", g.channels_in, "/group=", g.group, " needs ", g.words_per_group);
  if (g.kernel_shape) {
    Check(*g.kernel_shape == std::vector<int64_t>{f.kernel_h, f.kernel_w}, "attribute 'kernel_shape' ",
          ShapeStr(*g.kernel_shape), " does not match weights shape ", ShapeStr(w.shape));
  }
  Check(f.Taps() * g.channels_per_group <= kMaxAccumulatorBits, "a receptive field of ", f.Taps(), " taps x ",
        g.channels_per_group, " channels exceeds the 2^30 accumulator range");
  const int64_t rows = f.out_channels * f.Taps();
  CheckedProduct(w.shape, "weights (input 1)");
  Check(TailBitsClear(w.As<Word>(), rows, g.words_per_group, g.channels_per_group),
        "weights (input 1) have bits set beyond channels_in/group=", g.channels_per_group,
        " in a tap's last word; padding bits must be 0");
  f.field_words = f.Taps() * g.words_per_group;
  const Word* filters = w.As<Word>();
  f.rows.assign(filters, filters + f.out_channels * f.field_words);
  const int64_t per_group = f.out_channels / g.group, group_words = PanelWords(per_group, f.field_words);
  f.panels.resize(static_cast<size_t>(g.group * group_words));
  for (int64_t grp = 0; grp < g.group; ++grp) {
    PackPanels(filters + grp * per_group * f.field_words, f.field_words, per_group, f.field_words,
               f.panels.data() + grp * group_words);
  }
  if (nibbles) PrepareNibbles(f, g, *nibbles);
  f.tap_sum.resize(rows);
  for (int64_t r = 0; r < rows; ++r) {
    int32_t negatives = 0;
    for (int64_t i = 0; i < g.words_per_group; ++i) negatives += __builtin_popcount(filters[r * g.words_per_group + i]);
    f.tap_sum[r] = static_cast<int32_t>(g.channels_per_group) - 2 * negatives;
  }
  return f;
}

}  // namespace bnn2onnx
