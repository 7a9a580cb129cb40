// BinaryConv2D's packed filter (input 1), checked against the geometry and laid out for both GEMM forms.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/bgemm.h"
#include "kernels/bit_convention.h"
#include "ops/conv_geometry.h"
#include "ops/op_common.h"

namespace bnn2onnx {

// The packed filter in both GEMM layouts (and in both nibble forms for a nibble kernel, NibbleKernelFor), plus,
// per filter tap, what a tap of all-+1 input contributes: Cg - 2 * popcount(w_tap).
struct PackedFilter {
  int64_t out_channels = 0, kernel_h = 0, kernel_w = 0;
  int64_t field_words = 0;       // KH * KW * words_per_group
  std::vector<Word> rows;        // [O, field_words]: the GEMM's row side (filters x pixel panels)
  std::vector<Word> panels;      // per group, its filters' panels: the GEMM's panel side (pixel rows x filters)
  std::vector<uint8_t> nibble_rows;    // rows in the nibble form (bgemm.h)
  std::vector<uint8_t> nibble_panels;  // per group, its filters' nibble panels
  std::vector<int32_t> tap_sum;  // [O, KH * KW]

  int64_t Taps() const { return kernel_h * kernel_w; }
  Window Over(int64_t height, int64_t width) const { return {kernel_h, kernel_w, height, width}; }
};

PackedFilter PrepareFilter(const TensorIn& w, const ConvGeometry& g, const NibbleKernel* nibbles);

// The bytes of a group's filters' nibble panels (NibblePanelBytes(field_words) per 32 filters).
inline int64_t GroupNibbleBytes(const PackedFilter& f, int64_t per_group) {
  return (per_group + kNibbleColumns - 1) / kNibbleColumns * NibblePanelBytes(f.field_words);
}

}  // namespace bnn2onnx
