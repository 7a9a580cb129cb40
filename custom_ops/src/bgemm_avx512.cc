// Built with -mavx512f -mavx512vpopcntdq. BinaryGemmAvx512 is called only when the CPU reports both;
// GatherPanelAvx512 (AVX512F alone: no bit count in it) serves both AVX-512 tiers (isa_dispatch.cc).
#include "bgemm_avx512_tiles.h"

namespace bnn2onnx {
namespace {

// vpopcntd: 512 bit-MACs per three instructions (xor, vpopcntd, add).
struct VpopcntCount {
  static constexpr int64_t kChunkWords = 0;
  static __m512i Add(__m512i counts, __m512i x) { return _mm512_add_epi32(counts, _mm512_popcnt_epi32(x)); }
};

}  // namespace

void BinaryGemmAvx512(const Word* a, int64_t a_stride, int64_t a_step, int64_t m, const GemmB& b, int64_t n,
                      int64_t words, const GemmOutput& out) {
  Gemm<VpopcntCount>(a, a_stride, a_step, m, b, n, words, out);
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
