// Built with -mavx512f alone; called only when the CPU reports AVX-512 (isa_dispatch.cc): the kernels both AVX-512
// tiers share, bit packing and the receptive-field gather (bgemm.h). No std:: function templates here (see
// bgemm_avx2.cc).
#include <immintrin.h>

#include "kernels/bgemm.h"
#include "kernels/bitpacking.h"

namespace bnn2onnx {
namespace {

// Pixels whose words are built at once in a buffer of the stack.
constexpr int64_t kBlockPixels = 512;

// The first min(n, 16) lanes of a vector.
inline __mmask16 FirstLanes(int64_t n) { return n >= 16 ? __mmask16{0xffff} : static_cast<__mmask16>((1u << n) - 1); }

// Scatter indices of 16 consecutive pixels `stride` words apart (16 * stride must fit int32: words per pixel).
inline __m512i PixelWords(int64_t stride) {
  return _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                            _mm512_set1_epi32(static_cast<int>(stride)));
}

}  // namespace

void PackChannelsAvx512(const float* x, int64_t pixels, int64_t c_begin, int64_t count, int64_t p_begin,
                        int64_t p_end, Word* out, int64_t out_stride, int64_t out_offset) {
  // 16 * out_stride must fit the scatter's int32 indices (it always does for real layers: words per pixel).
  if (out_stride >= (int64_t{1} << 26)) {
    PackChannels(x, pixels, c_begin, count, p_begin, p_end, out, out_stride, out_offset);
    return;
  }
  // Lane l of a word vector is pixel p + l, whose word sits out_stride words after pixel p + l - 1's.
  const __m512i lane_words = PixelWords(out_stride);
  // Each channel's floats are read in one sequential pass over the block (a plane at a time, which the hardware
  // prefetches), their sign bits ORed into the block's words; reading all channels of 16 pixels at a time instead
  // touched a cache line of every plane per 16 pixels and waited on memory.
  alignas(64) Word words[kBlockPixels];
  for (int64_t block = p_begin; block < p_end; block += kBlockPixels) {
    const int64_t size = p_end - block < kBlockPixels ? p_end - block : kBlockPixels;
    for (int64_t w = 0; w < WordsFor(count); ++w) {
      const int64_t bits = count - w * kWordBits < kWordBits ? count - w * kWordBits : kWordBits;
      for (int64_t i = 0; i < size; i += 16) _mm512_store_si512(words + i, _mm512_setzero_si512());
      for (int64_t b = 0; b < bits; ++b) {
        const float* plane = x + (c_begin + w * kWordBits + b) * pixels + block;
        const __m512i bit = _mm512_set1_epi32(static_cast<int>(1u << b));
        for (int64_t i = 0; i < size; i += 16) {
          const __mmask16 lanes = FirstLanes(size - i);
          // x < 0 (ordered: NaN, 0 and -0.0 are +1, bit 0; bit_convention.h).
          const __mmask16 negative =
              _mm512_mask_cmp_ps_mask(lanes, _mm512_maskz_loadu_ps(lanes, plane + i), _mm512_setzero_ps(), _CMP_LT_OQ);
          const __m512i current = _mm512_load_si512(words + i);
          _mm512_store_si512(words + i, _mm512_mask_or_epi32(current, negative, current, bit));
        }
      }
      for (int64_t i = 0; i < size; i += 16) {
        const __mmask16 lanes = FirstLanes(size - i);
        _mm512_mask_i32scatter_epi32(out + (block + i) * out_stride + out_offset + w, lanes, lane_words,
                                     _mm512_load_si512(words + i), 4);
      }
    }
  }
}

void LaneBitsToPixelsAvx512(const uint16_t* lane_bits, int64_t channels, uint16_t lanes, Word* out,
                            int64_t out_stride) {
  // The lanes set in `lanes` are consecutive pixels, out_stride words apart.
  const __m512i pixel_words = PixelWords(out_stride);
  const __mmask16 pixels = FirstLanes(__builtin_popcount(lanes));
  for (int64_t w = 0; w < WordsFor(channels); ++w) {
    // Lane l's word: channel c's mask ORs bit c into the lanes it has set, a channel at a time.
    __m512i words = _mm512_setzero_si512();
    const int64_t bits = channels - w * kWordBits < kWordBits ? channels - w * kWordBits : kWordBits;
    for (int64_t b = 0; b < bits; ++b) {
      words = _mm512_mask_or_epi32(words, lane_bits[w * kWordBits + b], words,
                                   _mm512_set1_epi32(static_cast<int>(1u << b)));
    }
    _mm512_mask_i32scatter_epi32(out + w, pixels, pixel_words, _mm512_maskz_compress_epi32(lanes, words), 4);
  }
}

void GatherPanelAvx512(const Word* image, const int32_t* lane_offsets, const int32_t* tap_offsets,
                       const uint16_t* tap_masks, int64_t taps, int64_t tap_words, Word* panel) {
  const __m512i lanes = _mm512_loadu_si512(lane_offsets);
  for (int64_t t = 0; t < taps; ++t) {
    for (int64_t c = 0; c < tap_words; ++c) {
      const __m512i index = _mm512_add_epi32(lanes, _mm512_set1_epi32(static_cast<int>(tap_offsets[t] + c)));
      // Lanes outside the mask are not read (no fault for a padded tap) and come out as zero words.
      const __m512i words = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), tap_masks[t], index, image, 4);
      _mm512_storeu_si512(panel + (t * tap_words + c) * kPanelLanes, words);
    }
  }
}

}  // namespace bnn2onnx
