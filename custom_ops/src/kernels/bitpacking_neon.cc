// Built for ARM with NEON, as bgemm_neon.cc: bit packing from float for the NEON tier (isa_dispatch.cc).
#include <arm_neon.h>

#include "kernels/bitpacking.h"
#include "kernels/pack_blocks.h"

namespace bnn2onnx {

void PackChannelsNeon(const float* x, int64_t pixels, int64_t c_begin, int64_t count, int64_t p_begin,
                      int64_t p_end, Word* out, int64_t out_stride, int64_t out_offset) {
  const auto or_signs = [](const float* plane, Word bit, Word* words, int64_t size) {
    const uint32x4_t bits = vdupq_n_u32(bit);
    const int64_t vectors = size / 4 * 4;
    for (int64_t i = 0; i < vectors; i += 4) {
      // x < 0 (ordered: NaN, 0 and -0.0 are +1, bit 0; bit_convention.h).
      const uint32x4_t negative = vcltq_f32(vld1q_f32(plane + i), vdupq_n_f32(0.0f));
      vst1q_u32(words + i, vorrq_u32(vld1q_u32(words + i), vandq_u32(negative, bits)));
    }
    return vectors;
  };
  PackChannelsInBlocks(x, pixels, c_begin, count, p_begin, p_end, out, out_stride, out_offset, or_signs);
}

}  // namespace bnn2onnx
