// GemmOutput's scalar stores (bgemm.h says what each form stores), shared by the kernel files.
//
// Everything here has internal linkage (an unnamed namespace), so each kernel file compiles its own copy for its
// own instruction set. An inline function with external linkage would be one weak symbol for the whole library:
// the linker keeps whichever copy it meets first, and the portable kernel could end up calling code built with
// -mavx2 on a CPU without AVX (tests/test_kernel_isolation.py checks that no symbol is shared).
#pragma once

#include "kernels/bgemm.h"

namespace bnn2onnx {
namespace {

// Where the signs of the run of 16 columns from j of row i go (float output with sign_bits).
inline uint16_t& SignsOf(const GemmOutput& out, int64_t i, int64_t j) {
  return out.sign_bits[out.transposed ? i * out.sign_stride + j / kPanelLanes : j / kPanelLanes * out.sign_stride + i];
}

inline int32_t DotOf(const GemmOutput& out, int64_t i, int64_t j, int32_t popcount) {
  int32_t dot = out.bits - 2 * popcount;
  if (out.column_kinds) dot += out.kind_offsets[i * GemmOutput::kKinds + out.column_kinds[j]];
  if (out.row_kinds) dot += out.kind_offsets[out.row_kinds[i] * out.kinds_stride + j];
  return dot;
}

// Stores result (i, j) whose output column (j, or mapped) is `column`; returns the float stored (0 for dots).
inline float StoreResult(const GemmOutput& out, int64_t i, int64_t column, int32_t dot) {
  if (out.floats == nullptr) {
    out.dots[i * out.stride + column] = dot;
    return 0.0f;
  }
  const int64_t r = out.transposed ? column : i, c = out.transposed ? i : column;
  float y = static_cast<float>(dot) * out.multiplier[r] + out.bias[r];
  if (out.relu && y < 0.0f) y = 0.0f;
  if (out.post_multiplier) y = y * out.post_multiplier[r] + out.post_bias[r];
  if (out.residual) y += out.residual[r * out.stride + c];
  if (out.final_relu && y < 0.0f) y = 0.0f;
  out.floats[r * out.stride + c] = y;
  return y;
}

// Stores the packed results of row i for the 16 columns from j (a multiple of kPanelLanes), bit l for column j + l:
// a panel's 16-bit mask (lane bits), or the 16-bit half of row i's word that holds those columns, whatever the
// byte order.
inline void StoreBitsRun(const GemmOutput& out, int64_t i, int64_t j, uint16_t run) {
  if (out.lane_bits) {
    out.lane_bits[j / kPanelLanes * out.stride + i] = run;
    return;
  }
  Word& word = out.words[i * out.stride + j / kWordBits];
  const int64_t shift = j % kWordBits;  // 0 or kPanelLanes
  word = (word & ~(Word{0xffff} << shift)) | (Word{run} << shift);
}

// Results (i, j + l), l < count, from their popcounts: a run of at most kPanelLanes columns from a multiple of
// kPanelLanes (the portable, AVX2 and NEON kernels; AVX-512 has its own 16-lane store).
inline void StoreRun(const GemmOutput& out, int64_t i, int64_t j, const int32_t* popcounts, int64_t count) {
  if (out.lane_bits || out.words) {
    // Thresholds per row (lane bits: pixels are the lanes) or per column (words: filters are the columns).
    uint16_t run = 0;
    for (int64_t l = 0; l < count; ++l) {
      const int32_t dot = DotOf(out, i, j + l, popcounts[l]);
      const int64_t t = out.lane_bits ? i : j + l;
      run |= static_cast<uint16_t>((dot < out.below[t] || dot > out.above[t]) << l);
    }
    StoreBitsRun(out, i, j, run);
    return;
  }
  const uint16_t valid = out.panel_valid ? out.panel_valid[j / kPanelLanes] : uint16_t{0xffff};
  int64_t column = out.panel_valid ? out.panel_first[j / kPanelLanes] : j;
  uint16_t signs = 0;
  for (int64_t l = 0; l < count; ++l) {
    if (!(valid >> l & 1)) continue;
    const float y = StoreResult(out, i, column++, DotOf(out, i, j + l, popcounts[l]));
    signs |= static_cast<uint16_t>(SignBit(y) << l);
  }
  if (out.sign_bits) SignsOf(out, i, j) = signs;
}

}  // namespace
}  // namespace bnn2onnx
