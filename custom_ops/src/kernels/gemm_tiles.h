// The loop the vector GEMM kernels share: every panel of B against tiles of kMaxRows rows of A, then the rows
// left over one at a time. Internal linkage, as gemm_store.h explains: each kernel file compiles its own copy.
#pragma once

#include <type_traits>

#include "kernels/bgemm.h"

namespace bnn2onnx {
namespace {

// Calls tile(rows, word_offsets, a_rows, panel, i, j, lanes) for rows [i, i + rows) of A (a_rows points at row i)
// against the panel of columns [j, j + lanes); rows and word_offsets (GemmB's form) are compile-time constants.
template <int kMaxRows, class TileFn>
void TiledGemm(const Word* a, int64_t a_stride, int64_t m, const GemmB& b, int64_t n, TileFn&& tile) {
  ForBForm(b, [&](auto word_offsets) {
    for (int64_t j = 0; j < n; j += kPanelLanes) {
      const Word* panel = b.base + j / kPanelLanes * b.panel_stride;
      const int64_t lanes = n - j < kPanelLanes ? n - j : kPanelLanes;
      int64_t i = 0;
      for (; i + kMaxRows <= m; i += kMaxRows) {
        tile(std::integral_constant<int, kMaxRows>{}, word_offsets, a + i * a_stride, panel, i, j, lanes);
      }
      for (; i < m; ++i) tile(std::integral_constant<int, 1>{}, word_offsets, a + i * a_stride, panel, i, j, lanes);
    }
  });
}

}  // namespace
}  // namespace bnn2onnx
