// Built with -mavx2; called only when the CPU reports AVX2 (bgemm_dispatch.cc).
// Register tiles of 2 rows of A x 4 rows of B: per 256-bit step, 6 loads feed 8 xor + nibble-lookup popcounts
// (vpshufb), accumulated per byte and widened with vpsadbw before a byte could overflow.
#include <immintrin.h>

#include <algorithm>

#include "bgemm.h"

namespace bnn2onnx {
namespace {

constexpr int64_t kRows = 2, kCols = 4;
constexpr int64_t kPanelBytes = 16 * 1024;
// A byte gains at most 8 per step, so 31 steps fit before it must be widened.
constexpr int64_t kMaxByteSteps = 31;

inline __m256i PopcountBytes(__m256i v, __m256i lut, __m256i nibble) {
  const __m256i lo = _mm256_and_si256(v, nibble);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
  return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

inline __m256i Load(const Word* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// Adds each accumulator's bytes into totals[c] (per-byte counts summed with vpsadbw).
template <int C>
inline void AddByteSums(const __m256i (&bytes)[C], int32_t* totals) {
  const __m256i zero = _mm256_setzero_si256();
  if constexpr (C == 4) {
    // Four 4-lane sums folded into one vector [s0, s1, s2, s3] with a few shuffles instead of four reductions.
    const __m256i s0 = _mm256_sad_epu8(bytes[0], zero), s1 = _mm256_sad_epu8(bytes[1], zero);
    const __m256i s2 = _mm256_sad_epu8(bytes[2], zero), s3 = _mm256_sad_epu8(bytes[3], zero);
    const __m256i s01 = _mm256_add_epi64(_mm256_unpacklo_epi64(s0, s1), _mm256_unpackhi_epi64(s0, s1));
    const __m256i s23 = _mm256_add_epi64(_mm256_unpacklo_epi64(s2, s3), _mm256_unpackhi_epi64(s2, s3));
    const __m256i sums = _mm256_add_epi64(_mm256_permute2x128_si256(s01, s23, 0x20),
                                          _mm256_permute2x128_si256(s01, s23, 0x31));
    const __m256i low32 = _mm256_permutevar8x32_epi32(sums, _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6));
    const __m128i current = _mm_loadu_si128(reinterpret_cast<const __m128i*>(totals));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(totals),
                     _mm_add_epi32(current, _mm256_castsi256_si128(low32)));
  } else {
    for (int c = 0; c < C; ++c) {
      const __m256i v = _mm256_sad_epu8(bytes[c], zero);
      const __m128i pair = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
      totals[c] += static_cast<int32_t>(_mm_cvtsi128_si64(pair) + _mm_extract_epi64(pair, 1));
    }
  }
}

template <int R, int C>
void Tile(const Word* a, int64_t a_stride, const Word* b, int64_t b_stride, int64_t words, int32_t* counts,
          int64_t counts_stride) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,  //
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) counts[r * counts_stride + c] = 0;
  }
  // Chunks of at most kMaxByteSteps vectors: byte counters, then one widening per chunk (most layers: one).
  for (int64_t chunk = 0; chunk < words; chunk += kMaxByteSteps * kGemmWordAlign) {
    const int64_t end = chunk + kMaxByteSteps * kGemmWordAlign < words ? chunk + kMaxByteSteps * kGemmWordAlign
                                                                       : words;
    __m256i bytes[R][C];
    for (int r = 0; r < R; ++r) {
      for (int c = 0; c < C; ++c) bytes[r][c] = _mm256_setzero_si256();
    }
    for (int64_t k = chunk; k < end; k += kGemmWordAlign) {
      __m256i va[R];
      for (int r = 0; r < R; ++r) va[r] = Load(a + r * a_stride + k);
      for (int c = 0; c < C; ++c) {
        const __m256i vb = Load(b + c * b_stride + k);
        for (int r = 0; r < R; ++r) {
          bytes[r][c] = _mm256_add_epi8(bytes[r][c], PopcountBytes(_mm256_xor_si256(va[r], vb), lut, nibble));
        }
      }
    }
    for (int r = 0; r < R; ++r) AddByteSums<C>(bytes[r], counts + r * counts_stride);
  }
}

// All columns of rows [i, i + R).
template <int R>
void RowBlock(const Word* a, int64_t a_stride, const Word* b, int64_t b_stride, int64_t n, int64_t words,
              int32_t* counts, int64_t counts_stride) {
  int64_t j = 0;
  for (; j + kCols <= n; j += kCols) Tile<R, kCols>(a, a_stride, b + j * b_stride, b_stride, words, counts + j,
                                                     counts_stride);
  for (; j < n; ++j) Tile<R, 1>(a, a_stride, b + j * b_stride, b_stride, words, counts + j, counts_stride);
}

}  // namespace

void BinaryGemm2x4Avx2(const Word* a, int64_t a_stride, int64_t m, const Word* b, int64_t b_stride, int64_t n,
                       int64_t words, int32_t* counts, int64_t counts_stride) {
  // Columns in panels of about 16 KiB of B, so that a panel stays in L1 while every row pair of A passes over it
  // (streaming all of B per row pair would read it from L2 each time).
  const int64_t panel = std::max<int64_t>(kCols, (kPanelBytes / (words * int64_t{sizeof(Word)})) / kCols * kCols);
  for (int64_t j = 0; j < n; j += panel) {
    const int64_t cols = std::min(panel, n - j);
    int64_t i = 0;
    for (; i + kRows <= m; i += kRows) {
      RowBlock<kRows>(a + i * a_stride, a_stride, b + j * b_stride, b_stride, cols, words,
                      counts + i * counts_stride + j, counts_stride);
    }
    for (; i < m; ++i) {
      RowBlock<1>(a + i * a_stride, a_stride, b + j * b_stride, b_stride, cols, words, counts + i * counts_stride + j,
                  counts_stride);
    }
  }
}

}  // namespace bnn2onnx
