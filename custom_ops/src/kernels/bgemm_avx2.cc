// Built with -mavx2; called only when the CPU reports AVX2 (isa_dispatch.cc). No std:: templates here: an
// out-of-line copy built for AVX2 could be the one the linker keeps for the whole library.
// The GEMM on words for AVX2: BinaryDense's at batch 1 and the implicit GEMM's (the convolution and larger dense
// batches count by table lookup on the nibble form: bgemm_tables_avx2.cc). Register tiles of up to 3 rows of A x
// 1 panel of B (two 8-lane halves): per word of the reduction, one broadcast per row is xored with the panel word
// and counted by nibble lookup (vpshufb) into per-byte counters, which are widened to the 32-bit lane counts before
// a byte could overflow. (Harley-Seal carry-save adding in its place measured 1.03-1.60x slower in this pattern:
// bench/avx2_popcount_choice.c. Splitting both sides into nibbles first, 6 instead of 8 instructions per row and 8
// lanes, was 12-24% faster in a standalone loop but 3-25% slower in this kernel, at 3 and at 4 rows.)
#include <immintrin.h>

#include "kernels/gemm_store_avx2.h"
#include "kernels/gemm_tiles.h"

namespace bnn2onnx {
namespace {

constexpr int64_t kMaxRows = 3;
// A byte gains at most 8 per word, so 31 words fit before it must be widened.
constexpr int64_t kMaxByteSteps = 31;

inline __m256i PopcountBytes(__m256i v, __m256i lut, __m256i nibble) {
  const __m256i lo = _mm256_and_si256(v, nibble);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
  return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

// Each 32-bit lane's four byte counts, summed.
inline __m256i WidenBytes(__m256i bytes) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(bytes, _mm256_set1_epi8(1)), _mm256_set1_epi16(1));
}

// Rows [i, i + R) of A (a points at row i) against the panel of columns [j, j + lanes) (word k at
// panel + word_offsets[k], or with the panel layout panel + k * kPanelLanes). A function of its own: inlined into
// the tiling loop it ran 8% slower (64@56).
template <int R, bool kWordOffsets, StoreForm kForm>
__attribute__((noinline)) void Tile(const Word* a, int64_t a_stride, int64_t a_step, const Word* panel,
                                    const int32_t* word_offsets, int64_t words, const GemmOutput& out, int64_t i,
                                    int64_t j, int64_t lanes) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,  //
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  __m256i totals[R][2];
  for (int r = 0; r < R; ++r) totals[r][0] = totals[r][1] = _mm256_setzero_si256();
  for (int64_t chunk = 0; chunk < words; chunk += kMaxByteSteps) {
    const int64_t end = words < chunk + kMaxByteSteps ? words : chunk + kMaxByteSteps;
    __m256i bytes[R][2];
    for (int r = 0; r < R; ++r) bytes[r][0] = bytes[r][1] = _mm256_setzero_si256();
    for (int64_t k = chunk; k < end; ++k) {
      const Word* column = panel + (kWordOffsets ? word_offsets[k] : k * kPanelLanes);
      const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(column));
      const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(column + 8));
      for (int r = 0; r < R; ++r) {
        const __m256i va = _mm256_set1_epi32(static_cast<int>(a[r * a_stride + k * a_step]));
        bytes[r][0] = _mm256_add_epi8(bytes[r][0], PopcountBytes(_mm256_xor_si256(va, b0), lut, nibble));
        bytes[r][1] = _mm256_add_epi8(bytes[r][1], PopcountBytes(_mm256_xor_si256(va, b1), lut, nibble));
      }
    }
    for (int r = 0; r < R; ++r) {
      for (int h = 0; h < 2; ++h) totals[r][h] = _mm256_add_epi32(totals[r][h], WidenBytes(bytes[r][h]));
    }
  }
  for (int r = 0; r < R; ++r) StoreCounts<kForm>(out, i + r, j, totals[r], lanes);
}

}  // namespace

void BinaryGemmAvx2(const Word* a, int64_t a_stride, int64_t a_step, int64_t m, const GemmB& b, int64_t n,
                    int64_t words, const GemmOutput& out) {
  ForStoreForm(out, [&](auto form) {
    TiledGemm<kMaxRows>(a, a_stride, m, b, n, [&](auto rows, auto word_offsets, const Word* a_rows,
                                                  const Word* panel, int64_t i, int64_t j, int64_t lanes) {
      Tile<rows.value, word_offsets.value, form.value>(a_rows, a_stride, a_step, panel, b.word_offsets, words, out, i,
                                                       j, lanes);
    });
  });
}

}  // namespace bnn2onnx
