// A carry-save adder of 256-bit words for the Harley-Seal bit counts of popcount_probe.c and
// avx2_popcount_choice.c: high:low = a + b + c, bit by bit (AVX2 has no ternary logic: 5 instructions).
#pragma once

#include <immintrin.h>

#define CSA(high, low, a, b, c)                                             \
  do {                                                                      \
    const __m256i u = _mm256_xor_si256(a, b);                               \
    high = _mm256_or_si256(_mm256_and_si256(a, b), _mm256_and_si256(u, c)); \
    low = _mm256_xor_si256(u, c);                                           \
  } while (0)
