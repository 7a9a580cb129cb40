// Built for ARM with NEON, as bgemm_neon.cc: bit packing from float for the NEON tier (isa_dispatch.cc).
#include <arm_neon.h>

#include "kernels/bitpacking.h"

namespace bnn2onnx {
namespace {

// Pixels whose words are built at once in a buffer of the stack.
constexpr int64_t kBlockPixels = 512;

}  // namespace

void PackChannelsNeon(const float* x, int64_t pixels, int64_t c_begin, int64_t count, int64_t p_begin,
                      int64_t p_end, Word* out, int64_t out_stride, int64_t out_offset) {
  // As PackChannelsAvx2: each channel's floats in one sequential pass over a block of pixels, a compare per 4
  // pixels ORing the channel's bit into their words; then the words go to their pixels.
  Word words[kBlockPixels];
  for (int64_t block = p_begin; block < p_end; block += kBlockPixels) {
    const int64_t size = p_end - block < kBlockPixels ? p_end - block : kBlockPixels;
    const int64_t vectors = size / 4 * 4;  // pixels of whole vectors; the rest one at a time
    for (int64_t w = 0; w < WordsFor(count); ++w) {
      const int64_t bits = count - w * kWordBits < kWordBits ? count - w * kWordBits : kWordBits;
      for (int64_t i = 0; i < size; ++i) words[i] = 0;
      for (int64_t b = 0; b < bits; ++b) {
        const float* plane = x + (c_begin + w * kWordBits + b) * pixels + block;
        const uint32x4_t bit = vdupq_n_u32(1u << b);
        for (int64_t i = 0; i < vectors; i += 4) {
          // x < 0 (ordered: NaN, 0 and -0.0 are +1, bit 0; bit_convention.h).
          const uint32x4_t negative = vcltq_f32(vld1q_f32(plane + i), vdupq_n_f32(0.0f));
          vst1q_u32(words + i, vorrq_u32(vld1q_u32(words + i), vandq_u32(negative, bit)));
        }
        for (int64_t i = vectors; i < size; ++i) words[i] |= SignBit(plane[i]) << b;
      }
      for (int64_t i = 0; i < size; ++i) out[(block + i) * out_stride + out_offset + w] = words[i];
    }
  }
}

}  // namespace bnn2onnx
