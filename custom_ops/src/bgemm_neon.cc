// Built for ARM with NEON (aarch64, where it is always there; armv7 with -mfpu=neon, called only when the CPU
// reports NEON: isa_dispatch.cc).
// Register tiles of up to kMaxRows rows of A x 1 panel of B (four 4-lane quarters): per word of the reduction,
// one broadcast word per row is xored with the panel word, counted per byte (vcnt) and the byte counts added in
// pairs into 16-bit counters (vpadal), 3 instructions per row and quarter. A 16-bit counter holds two bytes'
// counts, at most 16 per word, so 4,095 words fit before the counters are widened into the 32-bit totals. Tile
// height by register file: aarch64 has 32 vector registers, so 4 rows (16 counters + 4 panel words + the
// broadcast and a scratch register); armv7 has 16, so 2 rows (8 + 4 + 2).
#include <arm_neon.h>

#include "gemm_store.h"

namespace bnn2onnx {
namespace {

#if defined(__aarch64__)
constexpr int kMaxRows = 4;
#else
constexpr int kMaxRows = 2;
#endif
constexpr int kQuarters = kPanelLanes / 4;
constexpr int64_t kMaxPairSteps = 4095;

// Rows [i, i + R) of A (a points at row i) against the panel of columns [j, j + lanes) (word k at
// panel + word_offsets[k], or with the panel layout panel + k * kPanelLanes).
template <int R, bool kWordOffsets>
void Tile(const Word* a, int64_t a_stride, int64_t a_step, const Word* panel, const int32_t* word_offsets,
          int64_t words, const GemmOutput& out, int64_t i, int64_t j, int64_t lanes) {
  uint32x4_t totals[R][kQuarters];
  for (int r = 0; r < R; ++r) {
    for (int q = 0; q < kQuarters; ++q) totals[r][q] = vdupq_n_u32(0);
  }
  for (int64_t chunk = 0; chunk < words; chunk += kMaxPairSteps) {
    const int64_t end = words < chunk + kMaxPairSteps ? words : chunk + kMaxPairSteps;
    uint16x8_t pairs[R][kQuarters];
    for (int r = 0; r < R; ++r) {
      for (int q = 0; q < kQuarters; ++q) pairs[r][q] = vdupq_n_u16(0);
    }
    for (int64_t k = chunk; k < end; ++k) {
      const Word* column = panel + (kWordOffsets ? word_offsets[k] : k * kPanelLanes);
      uint32x4_t b[kQuarters];
      for (int q = 0; q < kQuarters; ++q) b[q] = vld1q_u32(column + 4 * q);
      for (int r = 0; r < R; ++r) {
        const uint32x4_t va = vdupq_n_u32(a[r * a_stride + k * a_step]);
        for (int q = 0; q < kQuarters; ++q) {
          pairs[r][q] = vpadalq_u8(pairs[r][q], vcntq_u8(vreinterpretq_u8_u32(veorq_u32(va, b[q]))));
        }
      }
    }
    // The two 16-bit counters of a lane (its word's bytes 0-1 and 2-3) summed into its 32-bit total.
    for (int r = 0; r < R; ++r) {
      for (int q = 0; q < kQuarters; ++q) totals[r][q] = vpadalq_u16(totals[r][q], pairs[r][q]);
    }
  }
  for (int r = 0; r < R; ++r) {
    int32_t lane_counts[kPanelLanes];
    for (int q = 0; q < kQuarters; ++q) vst1q_s32(lane_counts + 4 * q, vreinterpretq_s32_u32(totals[r][q]));
    StoreRun(out, i + r, j, lane_counts, lanes);
  }
}

template <bool kWordOffsets>
void Gemm(const Word* a, int64_t a_stride, int64_t a_step, int64_t m, const GemmB& b, int64_t n, int64_t words,
          const GemmOutput& out) {
  for (int64_t j = 0; j < n; j += kPanelLanes) {
    const Word* panel = b.base + j / kPanelLanes * b.panel_stride;
    const int64_t lanes = n - j < kPanelLanes ? n - j : kPanelLanes;
    int64_t i = 0;
    for (; i + kMaxRows <= m; i += kMaxRows) {
      Tile<kMaxRows, kWordOffsets>(a + i * a_stride, a_stride, a_step, panel, b.word_offsets, words, out, i, j,
                                   lanes);
    }
    for (; i < m; ++i) {
      Tile<1, kWordOffsets>(a + i * a_stride, a_stride, a_step, panel, b.word_offsets, words, out, i, j, lanes);
    }
  }
}

}  // namespace

void BinaryGemmNeon(const Word* a, int64_t a_stride, int64_t a_step, int64_t m, const GemmB& b, int64_t n,
                    int64_t words, const GemmOutput& out) {
  ForBForm(b, [&](auto word_offsets) { Gemm<word_offsets.value>(a, a_stride, a_step, m, b, n, words, out); });
}

}  // namespace bnn2onnx
