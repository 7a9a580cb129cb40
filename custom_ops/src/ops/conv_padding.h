// Zero and -1 padding for BinaryConv2D: the GEMM reads padded taps as +1 (zero words), so each border pixel's dot
// product gets an offset that takes away what +1 input contributed at its padded taps, per filter and kind of
// border pixel (docs/kernels.md).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/bgemm.h"
#include "ops/conv_filter.h"
#include "ops/conv_geometry.h"

namespace bnn2onnx {

// Each output pixel's kind of border (0: none; a 3x3 kernel with pad 1 has 8 kinds), and per kind and filter the
// dot offset (GemmOutput adds it). Empty with one padding.
struct PaddingKinds {
  std::vector<PaddedTaps> kinds;     // kind k + 1 is kinds[k]
  std::vector<int32_t> pixel_kinds;  // [pixels rounded up to a panel]
  std::vector<int32_t> offsets;      // [kinds + 1, O]: pixels as rows
  std::vector<uint8_t> column_kinds;    // pixel_kinds as bytes: pixels as columns, after UseColumns()
  std::vector<int32_t> filter_offsets;  // [O, kKinds]: offsets transposed for pixels as columns, likewise

  bool FitColumns() const { return static_cast<int64_t>(kinds.size()) < GemmOutput::kKinds; }

  // Builds the pixels-as-columns forms (at most kKinds - 1 kinds: FitColumns()).
  void UseColumns(int64_t out_c);
};

PaddingKinds MakePaddingKinds(const ConvGeometry& g, const PackedFilter& f, const Window& w, int64_t out_h,
                              int64_t out_w);

}  // namespace bnn2onnx
