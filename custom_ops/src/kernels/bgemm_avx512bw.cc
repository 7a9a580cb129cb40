// Built with -mavx512f -mavx512bw; called only when the CPU reports both (isa_dispatch.cc): the AVX-512 GEMM for
// CPUs without vpopcntd (Skylake-SP, Cascade Lake), which else would run the AVX2 one.
#include "kernels/bgemm_avx512_tiles.h"

namespace bnn2onnx {
namespace {

// Nibble lookup (vpshufb) into per-byte counters, as in bgemm_avx2.cc but 64 bytes at a time: 8 instructions
// per 512 bit-MACs against 16 for two AVX2 vectors. QuickNet ran 1.42-1.45x faster than with the AVX2 kernels
// on an Ice Lake-SP VM (docs/speed-notes.md).
struct NibbleCount {
  // A byte gains at most 8 per word, so 31 words fit before it must be widened.
  static constexpr int64_t kChunkWords = 31;

  static __m512i Add(__m512i bytes, __m512i x) {
    // The count of each nibble value, in every 16-byte block (vpshufb looks up within blocks).
    const __m512i lut = _mm512_set4_epi32(0x04030302, 0x03020201, 0x03020201, 0x02010100);
    const __m512i nibble = _mm512_set1_epi8(0x0f);
    const __m512i low = _mm512_shuffle_epi8(lut, _mm512_and_si512(x, nibble));
    const __m512i high = _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(x, 4), nibble));
    return _mm512_add_epi8(bytes, _mm512_add_epi8(low, high));
  }

  // Each 32-bit lane's four byte counts, summed.
  static __m512i Widen(__m512i bytes) {
    return _mm512_madd_epi16(_mm512_maddubs_epi16(bytes, _mm512_set1_epi8(1)), _mm512_set1_epi16(1));
  }
};

}  // namespace

void BinaryGemmAvx512Bw(const Word* a, int64_t a_stride, int64_t a_step, int64_t m, const GemmB& b, int64_t n,
                        int64_t words, const GemmOutput& out) {
  Gemm<NibbleCount>(a, a_stride, a_step, m, b, n, words, out);
}

}  // namespace bnn2onnx
