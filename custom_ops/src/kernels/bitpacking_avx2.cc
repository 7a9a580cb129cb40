// Built with -mavx2; called only when the CPU reports AVX2 (isa_dispatch.cc): bit packing from float and the
// lane-bits transpose for the AVX2 tier (its receptive fields are gathered in the nibble form:
// bgemm_tables_avx2.cc). No std:: function templates here (see bgemm_avx2.cc).
#include <immintrin.h>

#include "kernels/bgemm.h"
#include "kernels/bitpacking.h"
#include "kernels/pack_blocks.h"

namespace bnn2onnx {

void PackChannelsAvx2(const float* x, int64_t pixels, int64_t c_begin, int64_t count, int64_t p_begin,
                      int64_t p_end, Word* out, int64_t out_stride, int64_t out_offset) {
  const auto or_signs = [](const float* plane, Word bit, Word* words, int64_t size) {
    const __m256i bits = _mm256_set1_epi32(static_cast<int>(bit));
    const int64_t vectors = size / 8 * 8;
    for (int64_t i = 0; i < vectors; i += 8) {
      // x < 0 (ordered: NaN, 0 and -0.0 are +1, bit 0; bit_convention.h).
      const __m256 negative = _mm256_cmp_ps(_mm256_loadu_ps(plane + i), _mm256_setzero_ps(), _CMP_LT_OQ);
      __m256i* at = reinterpret_cast<__m256i*>(words + i);
      _mm256_store_si256(at, _mm256_or_si256(_mm256_load_si256(at), _mm256_and_si256(_mm256_castps_si256(negative),
                                                                                      bits)));
    }
    return vectors;
  };
  PackChannelsInBlocks(x, pixels, c_begin, count, p_begin, p_end, out, out_stride, out_offset, or_signs);
}

void LaneBitsToPixelsAvx2(const uint16_t* lane_bits, int64_t channels, uint16_t lanes, Word* out, int64_t out_stride) {
  for (int64_t w = 0; w < WordsFor(channels); ++w) {
    // The word's 32 channel masks; those past the last channel are zero.
    alignas(32) uint16_t masks[kWordBits] = {};
    const int64_t bits = channels - w * kWordBits < kWordBits ? channels - w * kWordBits : kWordBits;
    __builtin_memcpy(masks, lane_bits + w * kWordBits, static_cast<size_t>(bits) * sizeof(uint16_t));
    const __m256i low = _mm256_load_si256(reinterpret_cast<const __m256i*>(masks));         // channels 0-15
    const __m256i high = _mm256_load_si256(reinterpret_cast<const __m256i*>(masks + 16));  // channels 16-31
    // Channels 0-7, 16-23 and 8-15, 24-31: packed to bytes below, they come out in channel order.
    const __m256i first = _mm256_permute2x128_si256(low, high, 0x20);
    const __m256i second = _mm256_permute2x128_si256(low, high, 0x31);
    Word* word = out + w;
    for (int l = 0; l < kPanelLanes; ++l) {
      if (!(lanes >> l & 1)) continue;
      // Lane l's bit to each mask's sign bit, kept by the saturating pack, gathered by the byte sign mask.
      const __m128i shift = _mm_cvtsi32_si128(15 - l);
      const __m256i signs = _mm256_packs_epi16(_mm256_sll_epi16(first, shift), _mm256_sll_epi16(second, shift));
      *word = static_cast<Word>(_mm256_movemask_epi8(signs));
      word += out_stride;
    }
  }
}

}  // namespace bnn2onnx
