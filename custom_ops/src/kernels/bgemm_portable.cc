#include "kernels/gemm_store.h"

namespace bnn2onnx {
namespace {

// Popcount without relying on the popcnt instruction (this file is built for the baseline ISA).
inline int32_t Popcount32(Word v) {
  v = v - ((v >> 1) & 0x55555555u);
  v = (v & 0x33333333u) + ((v >> 2) & 0x33333333u);
  v = (v + (v >> 4)) & 0x0f0f0f0fu;
  return static_cast<int32_t>((v * 0x01010101u) >> 24);
}

template <bool kWordOffsets>  // GemmB::word_offsets given, or the panel layout
void Gemm(const Word* a, int64_t a_stride, int64_t a_step, int64_t m, const GemmB& b, int64_t n, int64_t words,
          const GemmOutput& out) {
  for (int64_t i = 0; i < m; ++i) {
    const Word* row = a + i * a_stride;
    for (int64_t j0 = 0; j0 < n; j0 += kPanelLanes) {
      const Word* panel = b.base + j0 / kPanelLanes * b.panel_stride;
      int32_t lanes[kPanelLanes] = {};
      for (int64_t k = 0; k < words; ++k) {
        const Word word = row[k * a_step];
        const Word* column = panel + (kWordOffsets ? b.word_offsets[k] : k * kPanelLanes);
        for (int64_t l = 0; l < kPanelLanes; ++l) lanes[l] += Popcount32(word ^ column[l]);
      }
      StoreRun(out, i, j0, lanes, n - j0 < kPanelLanes ? n - j0 : kPanelLanes);
    }
  }
}

}  // namespace

void PackPanels(const Word* rows, int64_t stride, int64_t n, int64_t words, Word* panels) {
  for (int64_t i = 0; i < PanelWords(n, words); ++i) panels[i] = 0;
  for (int64_t j = 0; j < n; ++j) {
    Word* column = panels + PanelOffset(j, words);
    for (int64_t k = 0; k < words; ++k) column[k * kPanelLanes] = rows[j * stride + k];
  }
}

void BinaryGemmPortable(const Word* a, int64_t a_stride, int64_t a_step, int64_t m, const GemmB& b, int64_t n,
                        int64_t words, const GemmOutput& out) {
  ForBForm(b, [&](auto word_offsets) { Gemm<word_offsets.value>(a, a_stride, a_step, m, b, n, words, out); });
}

void GatherPanelPortable(const Word* image, const int32_t* lane_offsets, const int32_t* tap_offsets,
                         const uint16_t* tap_masks, int64_t taps, int64_t tap_words, Word* panel) {
  for (int64_t t = 0; t < taps; ++t) {
    for (int64_t c = 0; c < tap_words; ++c) {
      Word* word = panel + (t * tap_words + c) * kPanelLanes;
      for (int64_t l = 0; l < kPanelLanes; ++l) {
        word[l] = (tap_masks[t] >> l & 1) ? image[lane_offsets[l] + tap_offsets[t] + c] : Word{0};
      }
    }
  }
}

}  // namespace bnn2onnx
