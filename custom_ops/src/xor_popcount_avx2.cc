// Built with -mavx2 -mpopcnt; only called when the CPU reports AVX2 (see xor_popcount_dispatch.cc).
#include <immintrin.h>

#include <cstring>

#include "xor_popcount.h"

namespace bnn2onnx {
namespace {

constexpr int64_t kRowTile = 4;   // rows sharing one load of `a`
constexpr int64_t kVecWords = 8;  // 256 bits
// Byte counters hold at most 8 per vector, so 31 vectors fit in a byte before they must be widened.
constexpr int64_t kMaxByteSteps = 31;

// Per-byte popcount by nibble lookup (vpshufb).
inline __m256i PopcountBytes(__m256i v) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,  //
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  const __m256i lo = _mm256_and_si256(v, nibble);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
  return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

inline __m256i Load(const Word* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

inline int64_t HorizontalSum64(__m256i v) {
  alignas(32) int64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), v);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

inline int32_t ScalarTail(const Word* a, const Word* row, int64_t begin, int64_t words) {
  int32_t count = 0;
  for (int64_t i = begin; i < words; ++i) count += _mm_popcnt_u32(a[i] ^ row[i]);
  return count;
}

// Counts for `tile` (<= kRowTile) rows at once.
template <int64_t tile>
void CountTile(const Word* a, const Word* b, int64_t words, int64_t b_stride, int32_t* counts) {
  const __m256i zero = _mm256_setzero_si256();
  __m256i wide[tile];
  __m256i bytes[tile];
  for (int64_t r = 0; r < tile; ++r) wide[r] = bytes[r] = zero;
  const int64_t vec_end = words / kVecWords * kVecWords;
  int64_t steps = 0;
  for (int64_t i = 0; i < vec_end; i += kVecWords) {
    const __m256i va = Load(a + i);
    for (int64_t r = 0; r < tile; ++r) {
      bytes[r] = _mm256_add_epi8(bytes[r], PopcountBytes(_mm256_xor_si256(va, Load(b + r * b_stride + i))));
    }
    if (++steps == kMaxByteSteps) {
      for (int64_t r = 0; r < tile; ++r) {
        wide[r] = _mm256_add_epi64(wide[r], _mm256_sad_epu8(bytes[r], zero));
        bytes[r] = zero;
      }
      steps = 0;
    }
  }
  for (int64_t r = 0; r < tile; ++r) {
    wide[r] = _mm256_add_epi64(wide[r], _mm256_sad_epu8(bytes[r], zero));
    counts[r] = static_cast<int32_t>(HorizontalSum64(wide[r])) + ScalarTail(a, b + r * b_stride, vec_end, words);
  }
}

}  // namespace

void XorPopcountAvx2(const Word* a, const Word* b, int64_t words, int64_t rows, int64_t b_stride,
                     int32_t* counts) {
  int64_t r = 0;
  for (; r + kRowTile <= rows; r += kRowTile) CountTile<kRowTile>(a, b + r * b_stride, words, b_stride, counts + r);
  for (; r < rows; ++r) CountTile<1>(a, b + r * b_stride, words, b_stride, counts + r);
}

}  // namespace bnn2onnx
