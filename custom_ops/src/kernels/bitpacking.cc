#include "kernels/bitpacking.h"

#include <algorithm>

namespace bnn2onnx {
namespace {
// Pixels packed together: their words are built in registers while the word's channels are read (each channel's
// few consecutive floats share a cache line with the next group's), then stored once.
constexpr int64_t kPixelLanes = 8;

// Transposes a 16 x 16 bit matrix (row r is m[r], column c its bit c) in place: swapping the off-diagonal blocks
// of every 2j x 2j block, for j = 8, 4, 2, 1.
void Transpose16(uint16_t (&m)[16]) {
  constexpr uint16_t kLowColumns[4] = {0x00ff, 0x0f0f, 0x3333, 0x5555};  // columns whose bit j is 0
  for (int level = 0, j = 8; j > 0; ++level, j >>= 1) {
    for (int k = 0; k < 16; ++k) {
      if (k & j) continue;
      const uint16_t t = static_cast<uint16_t>(((m[k] >> j) ^ m[k + j]) & kLowColumns[level]);
      m[k + j] = static_cast<uint16_t>(m[k + j] ^ t);
      m[k] = static_cast<uint16_t>(m[k] ^ (t << j));
    }
  }
}
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
  if (shift == 0) {  // whole words: a copy (the common case, e.g. regrouping word-aligned groups)
    // A word at a time over the pixels: a tight loop (a word-planar output is one word per pixel).
    const Word* src = in + c_begin / kWordBits;
    for (int64_t w = 0; w < WordsFor(count); ++w) {
      const Word valid = ValidBits(count, w);
      for (int64_t p = p_begin; p < p_end; ++p) out[p * out_stride + out_offset + w] = src[p * in_stride + w] & valid;
    }
    return;
  }
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

void LaneBitsToPixels(const uint16_t* lane_bits, int64_t channels, uint16_t lanes, Word* out, int64_t out_stride) {
  for (int64_t w = 0; w < WordsFor(channels); ++w) {
    uint16_t halves[2][16] = {};  // [channels 16h.. of the word][lane], then transposed: [lane][channel]
    for (int64_t c = w * kWordBits; c < std::min(channels, (w + 1) * kWordBits); ++c) {
      halves[c / 16 % 2][c % 16] = lane_bits[c];
    }
    Transpose16(halves[0]);
    Transpose16(halves[1]);
    Word* word = out + w;
    for (int l = 0; l < 16; ++l) {
      if (!(lanes >> l & 1)) continue;
      *word = halves[0][l] | static_cast<Word>(halves[1][l]) << 16;
      word += out_stride;
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
