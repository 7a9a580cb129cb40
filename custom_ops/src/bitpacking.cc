#include "bitpacking.h"

#include <algorithm>

namespace bnn2onnx {
namespace {
// Pixels packed together: their words are built in registers while the word's channels are read (each channel's
// few consecutive floats share a cache line with the next group's), then stored once.
constexpr int64_t kPixelLanes = 8;
}  // namespace

void PackChannels(const float* x, int64_t pixels, int64_t c_begin, int64_t count, int64_t p_begin, int64_t p_end,
                  Word* out, int64_t out_stride, int64_t out_offset) {
  for (int64_t w = 0; w < WordsFor(count); ++w) {
    const int64_t bits = std::min(kWordBits, count - w * kWordBits);
    const float* first = x + (c_begin + w * kWordBits) * pixels;
    int64_t p = p_begin;
    for (; p + kPixelLanes <= p_end; p += kPixelLanes) {
      Word lanes[kPixelLanes] = {};
      for (int64_t b = 0; b < bits; ++b) {
        const float* row = first + b * pixels + p;
        for (int64_t l = 0; l < kPixelLanes; ++l) lanes[l] |= SignBit(row[l]) << b;
      }
      for (int64_t l = 0; l < kPixelLanes; ++l) out[(p + l) * out_stride + out_offset + w] = lanes[l];
    }
    for (; p < p_end; ++p) {
      Word word = 0;
      for (int64_t b = 0; b < bits; ++b) word |= SignBit(first[b * pixels + p]) << b;
      out[p * out_stride + out_offset + w] = word;
    }
  }
}

void ExtractChannels(const Word* in, int64_t in_stride, int64_t c_begin, int64_t count, int64_t p_begin,
                     int64_t p_end, Word* out, int64_t out_stride, int64_t out_offset) {
  const int64_t shift = c_begin % kWordBits;
  for (int64_t p = p_begin; p < p_end; ++p) {
    const Word* src = in + p * in_stride + c_begin / kWordBits;
    const int64_t src_words = in_stride - c_begin / kWordBits;  // readable words from src on
    for (int64_t w = 0; w < WordsFor(count); ++w) {
      const uint64_t lo = src[w];
      const uint64_t hi = w + 1 < src_words ? src[w + 1] : 0;
      const Word bits = static_cast<Word>(((hi << kWordBits) | lo) >> shift);
      out[p * out_stride + out_offset + w] = bits & ValidBits(count, w);
    }
  }
}

void UnpackChannels(const Word* in, int64_t in_stride, int64_t channels, int64_t pixels, int64_t p_begin,
                    int64_t p_end, float* out) {
  for (int64_t c = 0; c < channels; ++c) {
    const int64_t w = c / kWordBits;
    const int64_t b = c % kWordBits;
    float* row = out + c * pixels;
    for (int64_t p = p_begin; p < p_end; ++p) row[p] = (in[p * in_stride + w] >> b) & 1u ? -1.0f : 1.0f;
  }
}

bool TailBitsClear(const Word* words, int64_t rows, int64_t words_per_row, int64_t channels) {
  if (words_per_row == 0) return true;
  const Word tail = ~ValidBits(channels, words_per_row - 1);
  for (int64_t r = 0; r < rows; ++r) {
    if (words[r * words_per_row + words_per_row - 1] & tail) return false;
  }
  return true;
}

}  // namespace bnn2onnx
