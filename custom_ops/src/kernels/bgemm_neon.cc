// Built for ARM with NEON (aarch64, where it is always there; armv7 with -mfpu=neon, called only when the CPU
// reports NEON: isa_dispatch.cc).
// Register tiles of up to kMaxRows rows of A x 1 panel of B (four 4-lane quarters): per word of the reduction,
// one broadcast word per row is xored with the panel word, counted per byte (vcnt) and the byte counts added in
// pairs into 16-bit counters (vpadal), 3 instructions per row and quarter. A 16-bit counter holds two bytes'
// counts, at most 16 per word, so 4,095 words fit before the counters are widened into the 32-bit totals. Tile
// height by register file: aarch64 has 32 vector registers, and at 3 rows the word loop holds 12 counters, 4 panel
// registers, 3 broadcasts and the 12 xor/count temporaries that the compiler's schedule keeps live (31); at 4 rows
// it spilled counters to the stack inside the loop (15% more instructions per layer). armv7 has 16 quad
// registers: 2 rows (8 counters, 4 panel registers, 2 broadcasts, and temporaries). A full panel's results are
// stored from vectors (StorePanel) in the common output forms, the others through the scalar StoreRun
// (gemm_store.h).
#include <arm_neon.h>

#include "kernels/gemm_store.h"
#include "kernels/gemm_tiles.h"

namespace bnn2onnx {
namespace {

#if defined(__aarch64__)
constexpr int kMaxRows = 3;
#else
constexpr int kMaxRows = 2;
#endif
constexpr int kQuarters = kPanelLanes / 4;
constexpr int64_t kMaxPairSteps = 4095;

// Bit l of the result is set iff lane l of `set` (all ones or all zeros) is.
inline uint32_t LaneMask(uint32x4_t set) {
  static const uint32_t kLaneBits[4] = {1, 2, 4, 8};
  const uint32x4_t bits = vandq_u32(set, vld1q_u32(kLaneBits));
#if defined(__aarch64__)
  return vaddvq_u32(bits);
#else
  const uint32x2_t pairs = vadd_u32(vget_low_u32(bits), vget_high_u32(bits));
  return vget_lane_u32(vpadd_u32(pairs, pairs), 0);
#endif
}

// `y < 0 ? 0 : y` per lane (NaN and -0.0 pass through, as in StoreResult).
inline float32x4_t Relu(float32x4_t y) {
  const float32x4_t zero = vdupq_n_f32(0.0f);
  return vbslq_f32(vcltq_f32(y, zero), zero, y);
}

// The common stores of a full panel (16 columns from j) from vectors, the same arithmetic as StoreRun: packed bits
// (words or lane bits), and float rows (not transposed, no row kinds, through a column map only where the panel is
// all output pixels). Returns false when it stores nothing.
bool StorePanel(const GemmOutput& out, int64_t i, int64_t j, const uint32_t (&counts)[kPanelLanes]) {
  const bool bits_out = out.words != nullptr || out.lane_bits != nullptr;
  const bool mapped = out.panel_valid != nullptr;
  const bool rows_out = out.floats && !out.transposed && !out.row_kinds &&
                        (!mapped || out.panel_valid[j / kPanelLanes] == 0xffff);
  if (!bits_out && !rows_out) return false;
  int32_t kinds[kPanelLanes];
  if (out.column_kinds) {
    const int32_t* table = out.kind_offsets + i * GemmOutput::kKinds;
    for (int l = 0; l < kPanelLanes; ++l) kinds[l] = table[out.column_kinds[j + l]];
  }
  const int32_t* row_offsets = out.row_kinds && out.row_kinds[i] != 0
                                   ? out.kind_offsets + out.row_kinds[i] * out.kinds_stride + j
                                   : nullptr;
  int32x4_t dots[kQuarters];
  for (int q = 0; q < kQuarters; ++q) {
    dots[q] = vsubq_s32(vdupq_n_s32(out.bits), vshlq_n_s32(vreinterpretq_s32_u32(vld1q_u32(counts + 4 * q)), 1));
    if (out.column_kinds) dots[q] = vaddq_s32(dots[q], vld1q_s32(kinds + 4 * q));
    if (row_offsets) dots[q] = vaddq_s32(dots[q], vld1q_s32(row_offsets + 4 * q));
  }
  if (bits_out) {
    // Thresholds per column (words), or per row (lane bits).
    uint32_t run = 0;
    for (int q = 0; q < kQuarters; ++q) {
      const int32x4_t below = out.lane_bits ? vdupq_n_s32(out.below[i]) : vld1q_s32(out.below + j + 4 * q);
      const int32x4_t above = out.lane_bits ? vdupq_n_s32(out.above[i]) : vld1q_s32(out.above + j + 4 * q);
      run |= LaneMask(vorrq_u32(vcltq_s32(dots[q], below), vcgtq_s32(dots[q], above))) << (4 * q);
    }
    StoreBitsRun(out, i, j, static_cast<uint16_t>(run));
    return true;
  }
  const float32x4_t multiplier = vdupq_n_f32(out.multiplier[i]), bias = vdupq_n_f32(out.bias[i]);
  const int64_t row = i * out.stride + (mapped ? out.panel_first[j / kPanelLanes] : j);
  uint32_t signs = 0;
  for (int q = 0; q < kQuarters; ++q) {
    // Separate multiply and add, rounded as the reference does (the library is built with -ffp-contract=off).
    float32x4_t y = vaddq_f32(vmulq_f32(vcvtq_f32_s32(dots[q]), multiplier), bias);
    if (out.relu) y = Relu(y);
    if (out.post_multiplier) {
      y = vaddq_f32(vmulq_f32(y, vdupq_n_f32(out.post_multiplier[i])), vdupq_n_f32(out.post_bias[i]));
    }
    if (out.residual) y = vaddq_f32(y, vld1q_f32(out.residual + row + 4 * q));
    if (out.final_relu) y = Relu(y);
    vst1q_f32(out.floats + row + 4 * q, y);
    signs |= LaneMask(vcltq_f32(y, vdupq_n_f32(0.0f))) << (4 * q);
  }
  if (out.sign_bits) SignsOf(out, i, j) = static_cast<uint16_t>(signs);
  return true;
}

// Rows [i, i + R) of A (a points at row i) against the panel of columns [j, j + lanes) (word k at
// panel + word_offsets[k], or with the panel layout panel + k * kPanelLanes).
template <int R, bool kWordOffsets>
void Tile(const Word* a, int64_t a_stride, int64_t a_step, const Word* panel, const int32_t* word_offsets,
          int64_t words, const GemmOutput& out, int64_t i, int64_t j, int64_t lanes) {
  // The 32-bit totals stay in memory, touched once per 4,095 words: kept in registers beside the 16-bit counters
  // they made the compiler spill the counters inside the word loop.
  uint32_t totals[R][kPanelLanes] = {};
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
      for (int q = 0; q < kQuarters; ++q) {
        vst1q_u32(totals[r] + 4 * q, vpadalq_u16(vld1q_u32(totals[r] + 4 * q), pairs[r][q]));
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    if (lanes == kPanelLanes && StorePanel(out, i + r, j, totals[r])) continue;
    StoreRun(out, i + r, j, reinterpret_cast<const int32_t*>(totals[r]), lanes);
  }
}

}  // namespace

void BinaryGemmNeon(const Word* a, int64_t a_stride, int64_t a_step, int64_t m, const GemmB& b, int64_t n,
                    int64_t words, const GemmOutput& out) {
  TiledGemm<kMaxRows>(a, a_stride, m, b, n, [&](auto rows, auto word_offsets, const Word* a_rows, const Word* panel,
                                                int64_t i, int64_t j, int64_t lanes) {
    Tile<rows.value, word_offsets.value>(a_rows, a_stride, a_step, panel, b.word_offsets, words, out, i, j, lanes);
  });
}

}  // namespace bnn2onnx
