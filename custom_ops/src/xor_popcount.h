// The binary GEMM core shared by BinaryConv2D and BinaryDense: popcount(a xor b_r) for many rows b_r.
// One portable implementation and one AVX2 implementation, chosen once per kernel by SelectXorPopcount.
#pragma once

#include <cstdint>

#include "bit_convention.h"

namespace bnn2onnx {

// counts[r] = popcount(a[0:words] xor b[r * b_stride : r * b_stride + words]) for r in [0, rows).
// Reads exactly those words, nothing past them.
using XorPopcountFn = void (*)(const Word* a, const Word* b, int64_t words, int64_t rows, int64_t b_stride,
                               int32_t* counts);

void XorPopcountPortable(const Word* a, const Word* b, int64_t words, int64_t rows, int64_t b_stride,
                         int32_t* counts);
#if defined(BNN2ONNX_HAVE_AVX2)
void XorPopcountAvx2(const Word* a, const Word* b, int64_t words, int64_t rows, int64_t b_stride,
                     int32_t* counts);
#endif

enum class Isa { kPortable, kAvx2 };

// The best implementation for this CPU; BNN2ONNX_ISA=portable forces the portable one (used by the tests so
// both paths are checked against the reference on every machine).
Isa SelectIsa();
XorPopcountFn XorPopcountFor(Isa isa);

}  // namespace bnn2onnx
