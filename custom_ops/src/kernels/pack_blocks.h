// The loop the vector channel packers share (bitpacking_avx2.cc, bitpacking_neon.cc): each channel's floats are
// read in one sequential pass over a block of pixels (a plane at a time, which the hardware prefetches), their
// sign bits ORed into the block's words; then the words go to their pixels.
#pragma once

#include "kernels/bitpacking.h"

namespace bnn2onnx {

// Pixels whose words are built at once in a buffer of the stack.
constexpr int64_t kPackBlockPixels = 512;

// As PackChannels (bitpacking.h). `or_signs(plane, bit, words, size)` ORs `bit` into words[i] where plane[i] < 0,
// for as many of the first `size` pixels as its vectors cover, and returns how many; the rest are done here one at
// a time. Static: each instruction set's file compiles its own copy with its own flags, so the linker cannot keep a
// copy built for one instruction set for the callers of another.
template <typename OrSigns>
static inline void PackChannelsInBlocks(const float* x, int64_t pixels, int64_t c_begin, int64_t count,
                                        int64_t p_begin, int64_t p_end, Word* out, int64_t out_stride,
                                        int64_t out_offset, OrSigns or_signs) {
  alignas(64) Word words[kPackBlockPixels];
  for (int64_t block = p_begin; block < p_end; block += kPackBlockPixels) {
    const int64_t size = p_end - block < kPackBlockPixels ? p_end - block : kPackBlockPixels;
    for (int64_t w = 0; w < WordsFor(count); ++w) {
      const int64_t bits = count - w * kWordBits < kWordBits ? count - w * kWordBits : kWordBits;
      for (int64_t i = 0; i < size; ++i) words[i] = 0;
      for (int64_t b = 0; b < bits; ++b) {
        const float* plane = x + (c_begin + w * kWordBits + b) * pixels + block;
        for (int64_t i = or_signs(plane, Word{1} << b, words, size); i < size; ++i) words[i] |= SignBit(plane[i]) << b;
      }
      for (int64_t i = 0; i < size; ++i) out[(block + i) * out_stride + out_offset + w] = words[i];
    }
  }
}

}  // namespace bnn2onnx
