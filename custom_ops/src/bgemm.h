// The binary GEMM shared by BinaryConv2D and BinaryDense: the +-1 dot products of every row of A with every
// column of B, bits - 2 * popcount(a_i xor b_j), where `bits` is the number of real (non-padding) bits per row.
//
// A is row-major (any stride); B is stored in panels of kPanelLanes columns, word-interleaved, so that a kernel
// loads one word of 16 columns as one vector and xors it with one broadcast word of A: every vector lane is an
// output, so there is no horizontal reduction and no padding of the reduction length. Kernels: portable, AVX2
// (nibble-lookup popcount), AVX-512 (vpopcntd), chosen per kernel by SelectIsa.
#pragma once

#include <cstdint>

#include "bit_convention.h"

namespace bnn2onnx {

constexpr int64_t kPanelLanes = 16;

// Words of a panel-layout B with n columns of `words` words: panel q holds columns [16q, 16q + 16), word k of
// column j at [(j / 16) * words * 16 + k * 16 + j % 16]; lanes past n are zero.
constexpr int64_t PanelWords(int64_t n, int64_t words) {
  return (n + kPanelLanes - 1) / kPanelLanes * words * kPanelLanes;
}

// Where word 0 of column j lives in a panel-layout B (word k is kPanelLanes further per k).
constexpr int64_t PanelOffset(int64_t j, int64_t words) {
  return j / kPanelLanes * words * kPanelLanes + j % kPanelLanes;
}

// Writes the n rows (`stride` words apart, `words` words each) into `panels` (PanelWords(n, words) words).
void PackPanels(const Word* rows, int64_t stride, int64_t n, int64_t words, Word* panels);

// dots[i * dots_stride + j] = bits - 2 * popcount(a[i * a_stride + k] xor b_j[k] for k < words), i < m, j < n,
// with b in panel layout. Only those dots are written; the zero lanes of B's last panel are never stored.
using BinaryGemmFn = void (*)(const Word* a, int64_t a_stride, int64_t m, const Word* b_panels, int64_t n,
                              int64_t words, int32_t bits, int32_t* dots, int64_t dots_stride);

void BinaryGemmPortable(const Word* a, int64_t a_stride, int64_t m, const Word* b_panels, int64_t n, int64_t words,
                        int32_t bits, int32_t* dots, int64_t dots_stride);
#if defined(BNN2ONNX_HAVE_X86_KERNELS)
void BinaryGemmAvx2(const Word* a, int64_t a_stride, int64_t m, const Word* b_panels, int64_t n, int64_t words,
                    int32_t bits, int32_t* dots, int64_t dots_stride);
void BinaryGemmAvx512(const Word* a, int64_t a_stride, int64_t m, const Word* b_panels, int64_t n, int64_t words,
                      int32_t bits, int32_t* dots, int64_t dots_stride);
#endif

enum class Isa { kPortable, kAvx2, kAvx512 };

// The best implementation this CPU runs. BNN2ONNX_ISA=portable|avx2 caps the choice (the tests run every kernel
// the machine has against the reference).
Isa SelectIsa();
BinaryGemmFn BinaryGemmFor(Isa isa);

}  // namespace bnn2onnx
