// BinaryConv2D's packed filter (input 1), checked against the geometry and laid out for both GEMM forms.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/bit_convention.h"
#include "ops/conv_geometry.h"
#include "ops/op_common.h"

namespace bnn2onnx {

// The packed filter in both GEMM layouts, plus, per filter tap, what a tap of all-+1 input contributes:
// Cg - 2 * popcount(w_tap).
struct PackedFilter {
  int64_t out_channels = 0, kernel_h = 0, kernel_w = 0;
  int64_t field_words = 0;       // KH * KW * words_per_group
  std::vector<Word> rows;        // [O, field_words]: the GEMM's row side (filters x pixel panels)
  std::vector<Word> panels;      // per group, its filters' panels: the GEMM's panel side (pixel rows x filters)
  std::vector<int32_t> tap_sum;  // [O, KH * KW]

  int64_t Taps() const { return kernel_h * kernel_w; }
  Window Over(int64_t height, int64_t width) const { return {kernel_h, kernel_w, height, width}; }
};

PackedFilter PrepareFilter(const TensorIn& w, const ConvGeometry& g);

}  // namespace bnn2onnx
