#include "ops/conv_geometry.h"

namespace bnn2onnx {

ConvGeometry ReadGeometry(const Attributes& attributes) {
  ConvGeometry g;
  g.channels_in = attributes.RequiredInt("channels_in");
  Check(g.channels_in >= 1 && g.channels_in <= kMaxDim, "attribute 'channels_in' must be in [1, ", kMaxDim,
        "], got ", g.channels_in);
  g.group = attributes.Int("group", 1);
  Check(g.group >= 1 && g.channels_in % g.group == 0, "attribute 'group'=", g.group,
        " must be >= 1 and divide channels_in=", g.channels_in);
  g.channels_per_group = g.channels_in / g.group;
  g.words_per_group = WordsFor(g.channels_per_group);
  const std::vector<int64_t> strides = PairAttribute(attributes, "strides", {1, 1}, 1);
  const std::vector<int64_t> dilations = PairAttribute(attributes, "dilations", {1, 1}, 1);
  g.stride_h = strides[0], g.stride_w = strides[1];
  g.dilation_h = dilations[0], g.dilation_w = dilations[1];
  const std::vector<int64_t> pads = attributes.Ints("pads", {0, 0, 0, 0});
  Check(pads.size() == 4, "attribute 'pads' must have 4 values [top, left, bottom, right], got ", ShapeStr(pads));
  for (int64_t p : pads) Check(p >= 0 && p <= kMaxDim, "attribute 'pads' values must be in [0, ", kMaxDim,
                               "], got ", ShapeStr(pads));
  g.pad_top = pads[0], g.pad_left = pads[1], g.pad_bottom = pads[2], g.pad_right = pads[3];
  const int64_t pad_value = attributes.Int("pad_value", 0);
  Check(pad_value >= -1 && pad_value <= 1, "attribute 'pad_value' must be 0 (zero padding), 1 (+1 padding) or -1 ",
        "(-1 padding), got ", pad_value);
  g.padding_correction = static_cast<int32_t>(1 - pad_value);
  g.kernel_shape = attributes.OptionalInts("kernel_shape");
  return g;
}

bool InsideInput(const ConvGeometry& g, const Window& w, int64_t oh, int64_t ow) {
  const int64_t top = oh * g.stride_h - g.pad_top, left = ow * g.stride_w - g.pad_left;
  return top >= 0 && left >= 0 && top + (w.kernel_h - 1) * g.dilation_h < w.height &&
         left + (w.kernel_w - 1) * g.dilation_w < w.width;
}

PaddedTaps PaddedTapsAt(const ConvGeometry& g, const Window& w, int64_t oh, int64_t ow) {
  const int64_t top = oh * g.stride_h - g.pad_top, left = ow * g.stride_w - g.pad_left;
  PaddedTaps t;
  for (int64_t kh = 0; kh < w.kernel_h; ++kh) {
    const int64_t ih = top + kh * g.dilation_h;
    t.top += ih < 0, t.bottom += ih >= w.height;
  }
  for (int64_t kw = 0; kw < w.kernel_w; ++kw) {
    const int64_t iw = left + kw * g.dilation_w;
    t.left += iw < 0, t.right += iw >= w.width;
  }
  return t;
}

std::vector<int32_t> TapOffsets(const ConvGeometry& g, const Window& w, int64_t width, int64_t pixel_stride) {
  std::vector<int32_t> offsets;
  for (int64_t kh = 0; kh < w.kernel_h; ++kh) {
    for (int64_t kw = 0; kw < w.kernel_w; ++kw) {
      offsets.push_back(static_cast<int32_t>((kh * g.dilation_h * width + kw * g.dilation_w) * pixel_stride));
    }
  }
  return offsets;
}

}  // namespace bnn2onnx
