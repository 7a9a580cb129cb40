// The binary GEMM shared by BinaryConv2D and BinaryDense: counts of differing bits between every row of A and
// every row of B, i.e. popcount(a_i xor b_j); the +-1 dot product is then bits - 2 * count.
// A portable implementation and an AVX2 one (2x4 register tiles), chosen per kernel by SelectIsa.
#pragma once

#include <cstdint>

#include "bit_convention.h"

namespace bnn2onnx {

// Rows are padded with zero words to a multiple of this (256 bits): zero xor zero adds nothing, and the AVX2
// kernel then needs no tail handling.
constexpr int64_t kGemmWordAlign = 8;

constexpr int64_t GemmWords(int64_t words) { return (words + kGemmWordAlign - 1) / kGemmWordAlign * kGemmWordAlign; }

// counts[i * counts_stride + j] = popcount(a[i * a_stride + k] xor b[j * b_stride + k] for k < words),
// for i < m, j < n. `words` is a multiple of kGemmWordAlign; exactly those words of each row are read.
using BinaryGemmFn = void (*)(const Word* a, int64_t a_stride, int64_t m, const Word* b, int64_t b_stride,
                              int64_t n, int64_t words, int32_t* counts, int64_t counts_stride);

void BinaryGemmPortable(const Word* a, int64_t a_stride, int64_t m, const Word* b, int64_t b_stride, int64_t n,
                        int64_t words, int32_t* counts, int64_t counts_stride);
#if defined(BNN2ONNX_HAVE_AVX2)
void BinaryGemm2x4Avx2(const Word* a, int64_t a_stride, int64_t m, const Word* b, int64_t b_stride, int64_t n,
                       int64_t words, int32_t* counts, int64_t counts_stride);
#endif

enum class Isa { kPortable, kAvx2 };

// The best implementation for this CPU; BNN2ONNX_ISA=portable forces the portable one (the tests run both
// against the reference on every machine).
Isa SelectIsa();
BinaryGemmFn BinaryGemmFor(Isa isa);

}  // namespace bnn2onnx
