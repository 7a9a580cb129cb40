// BinaryConv2D's geometry (docs/ops.md): its attributes, and for an output pixel which taps of the filter read
// inside the input and where each tap's words start.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "kernels/bit_convention.h"
#include "ops/op_common.h"

namespace bnn2onnx {

struct ConvGeometry {
  int64_t channels_in = 0, group = 1, channels_per_group = 0, words_per_group = 0;
  int64_t stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  // The GEMM reads padded taps as +1 (zero words); at border pixels it takes away this many times what a +1 tap
  // contributed: 0 with +1 padding (pad_value=1), 1 with zero padding (0), 2 with -1 padding (-1).
  int32_t padding_correction = 1;
  std::optional<std::vector<int64_t>> kernel_shape;
};

// Reads and checks channels_in, group, strides, dilations, pads, pad_value and kernel_shape.
ConvGeometry ReadGeometry(const Attributes& attributes);

// A filter's extent over an input of height x width: which taps of an output pixel read inside the input.
struct Window {
  int64_t kernel_h = 0, kernel_w = 0, height = 0, width = 0;

  int64_t Taps() const { return kernel_h * kernel_w; }
};

// Output pixel p as (row, column), then stepped along pixel by pixel without a division each (hot: per pixel).
struct PixelCursor {
  int64_t oh, ow, out_w;
  PixelCursor(int64_t p, int64_t width) : oh(p / width), ow(p % width), out_w(width) {}
  void Next() {
    if (++ow == out_w) ow = 0, ++oh;
  }
};

// Which taps of an output pixel zero padding touches: kernel rows [0, top) and [KH - bottom, KH), kernel columns
// [0, left) and [KW - right, KW) (padded rows and columns are a prefix and a suffix, dilated or not).
struct PaddedTaps {
  int64_t top = 0, bottom = 0, left = 0, right = 0;
  bool operator==(const PaddedTaps& o) const {
    return top == o.top && bottom == o.bottom && left == o.left && right == o.right;
  }
  // Whether tap (kh, kw) of a kernel_h x kernel_w filter reads inside the input.
  bool Inside(int64_t kh, int64_t kw, int64_t kernel_h, int64_t kernel_w) const {
    return kh >= top && kh < kernel_h - bottom && kw >= left && kw < kernel_w - right;
  }
};

// Whether every tap of output pixel (oh, ow) reads inside the input (no padding involved).
bool InsideInput(const ConvGeometry& g, const Window& w, int64_t oh, int64_t ow);

PaddedTaps PaddedTapsAt(const ConvGeometry& g, const Window& w, int64_t oh, int64_t ow);

// Where each tap of a receptive field starts, in words from its top-left pixel's group start, for an image `width`
// pixels wide of `pixel_stride` words per pixel (a plane of the implicit GEMM's grid: 1).
std::vector<int32_t> TapOffsets(const ConvGeometry& g, const Window& w, int64_t width, int64_t pixel_stride);

}  // namespace bnn2onnx
