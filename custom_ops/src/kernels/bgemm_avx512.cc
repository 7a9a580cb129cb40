// Built with -mavx512f -mavx512vpopcntdq; called only when the CPU reports both (isa_dispatch.cc).
#include "kernels/bgemm_avx512_tiles.h"

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

}  // namespace bnn2onnx
