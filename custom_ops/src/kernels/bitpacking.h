// Conversions between float tensors (channel-major, as ONNX lays them out) and packed words (channel-last).
// Every function works on a range of pixels so callers can split the work across threads.
#pragma once

#include <cstdint>

#include "kernels/bit_convention.h"
#include "kernels/isa.h"

namespace bnn2onnx {

// Packs channels [c_begin, c_begin + count) of one image `x` (float [C, pixels], channel-major) for pixels
// [p_begin, p_end): words go to out[p * out_stride + out_offset + w], w < WordsFor(count), tail bits 0.
void PackChannels(const float* x, int64_t pixels, int64_t c_begin, int64_t count, int64_t p_begin, int64_t p_end,
                  Word* out, int64_t out_stride, int64_t out_offset);
#if defined(BNN2ONNX_HAVE_X86_KERNELS)
// The same, 8 (AVX2) or 16 (AVX-512) pixels at a time (a compare per channel ORs its bit into their words at once).
void PackChannelsAvx2(const float* x, int64_t pixels, int64_t c_begin, int64_t count, int64_t p_begin,
                      int64_t p_end, Word* out, int64_t out_stride, int64_t out_offset);
void PackChannelsAvx512(const float* x, int64_t pixels, int64_t c_begin, int64_t count, int64_t p_begin,
                        int64_t p_end, Word* out, int64_t out_stride, int64_t out_offset);
#endif
#if defined(BNN2ONNX_HAVE_NEON_KERNELS)
// The same, 4 pixels at a time.
void PackChannelsNeon(const float* x, int64_t pixels, int64_t c_begin, int64_t count, int64_t p_begin, int64_t p_end,
                      Word* out, int64_t out_stride, int64_t out_offset);
#endif
using PackChannelsFn = decltype(&PackChannels);
PackChannelsFn PackChannelsFor(Isa isa);

// Copies channels [c_begin, c_begin + count) of packed pixels (in_stride words each) into their own zero-tailed
// words at out[p * out_stride + out_offset + w], for pixels [p_begin, p_end).
void ExtractChannels(const Word* in, int64_t in_stride, int64_t c_begin, int64_t count, int64_t p_begin,
                     int64_t p_end, Word* out, int64_t out_stride, int64_t out_offset);

// The packed output of a pixels-as-lanes GEMM (GemmOutput::lane_bits), channel-last: bit l of lane_bits[c] is
// channel c (< channels) of lane l. The lanes set in `lanes` are, in order, consecutive pixels: the r-th one's
// WordsFor(channels) words go to out[r * out_stride + w], tail bits 0.
void LaneBitsToPixels(const uint16_t* lane_bits, int64_t channels, uint16_t lanes, Word* out, int64_t out_stride);
#if defined(BNN2ONNX_HAVE_X86_KERNELS)
// The same, a lane's 32 channels at once by byte sign masks.
void LaneBitsToPixelsAvx2(const uint16_t* lane_bits, int64_t channels, uint16_t lanes, Word* out, int64_t out_stride);
// The same, a 16-channel compare mask per lane.
void LaneBitsToPixelsAvx512(const uint16_t* lane_bits, int64_t channels, uint16_t lanes, Word* out,
                            int64_t out_stride);
#endif
using LaneBitsToPixelsFn = decltype(&LaneBitsToPixels);
LaneBitsToPixelsFn LaneBitsToPixelsFor(Isa isa);

// Unpacks `channels` channels of packed pixels [p_begin, p_end) (in_stride words each) into float +-1
// at out[c * pixels + p] (channel-major). Tail bits are ignored.
void UnpackChannels(const Word* in, int64_t in_stride, int64_t channels, int64_t pixels, int64_t p_begin,
                    int64_t p_end, float* out);

// Mask of the valid bits of word `w` for a tensor of `channels` channels.
inline Word ValidBits(int64_t channels, int64_t w) {
  const int64_t used = channels - w * kWordBits;
  return used >= kWordBits ? ~Word{0} : (Word{1} << used) - 1;
}

// True when every row of `words_per_row` words (holding `channels` channels) has its tail bits clear.
bool TailBitsClear(const Word* words, int64_t rows, int64_t words_per_row, int64_t channels);

}  // namespace bnn2onnx
