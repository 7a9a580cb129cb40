// Built with -mavx512f; called only when the CPU reports AVX-512 (isa_dispatch.cc). No std:: function templates
// here (see bgemm_avx2.cc).
#include <immintrin.h>

#include "bitpacking.h"

namespace bnn2onnx {

void PackChannelsAvx512(const float* x, int64_t pixels, int64_t c_begin, int64_t count, int64_t p_begin,
                        int64_t p_end, Word* out, int64_t out_stride, int64_t out_offset) {
  // Lane l of a word vector is pixel p + l, whose word sits out_stride words after pixel p + l - 1's.
  const __m512i lane_words = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                                _mm512_set1_epi32(static_cast<int>(out_stride)));
  int64_t p = p_begin;
  // 16 * out_stride must fit the scatter's int32 indices (it always does for real layers: words per pixel).
  if (out_stride < (int64_t{1} << 26)) {
    for (; p + 16 <= p_end; p += 16) {
      for (int64_t w = 0; w < WordsFor(count); ++w) {
        const int64_t bits = count - w * kWordBits < kWordBits ? count - w * kWordBits : kWordBits;
        const float* first = x + (c_begin + w * kWordBits) * pixels + p;
        __m512i words = _mm512_setzero_si512();
        for (int64_t b = 0; b < bits; ++b) {
          // x < 0 (ordered: NaN, 0 and -0.0 are +1, bit 0; bit_convention.h).
          const __mmask16 negative = _mm512_cmp_ps_mask(_mm512_loadu_ps(first + b * pixels), _mm512_setzero_ps(),
                                                        _CMP_LT_OQ);
          words = _mm512_mask_or_epi32(words, negative, words, _mm512_set1_epi32(static_cast<int>(1u << b)));
        }
        _mm512_i32scatter_epi32(out + p * out_stride + out_offset + w, lane_words, words, 4);
      }
    }
  }
  PackChannels(x, pixels, c_begin, count, p, p_end, out, out_stride, out_offset);
}

}  // namespace bnn2onnx
