// Built with -mavx2; called only when the CPU reports AVX2 (isa_dispatch.cc). No std:: templates here (see
// bgemm_avx2.cc).
//
// The binary GEMM by table lookup, on operands in the nibble form (bgemm.h): popcount(a xor b) of a nibble of A
// and a nibble of B is entry b of A's nibble's table, one of 16 (kTables). With A's nibble's table broadcast to
// both 128-bit lanes and 32 columns' nibbles of B as vpshufb's indices, one shuffle and one byte add count 32
// columns against a row at one position, where the nibble-lookup kernel (bgemm_avx2.cc) spends 8 vector
// instructions on 8 columns' 32-bit words: half the vector instructions per bit pair. The table is loaded by its
// offset (a byte of A's nibble form), so each row and position also costs two loads.
//
// Register tiles of 4 rows x 2 panels (64 columns): 8 byte counters, 2 panel vectors and a table of the 16 ymm
// registers. Byte counters gain at most 4 per position and are widened to 16 bits every 63 positions, 16-bit ones
// to 32 bits every 260 of those.
#include <immintrin.h>

#include <type_traits>

#include "kernels/gemm_store_avx2.h"

namespace bnn2onnx {
namespace {

constexpr int64_t kTileRows = 4;
constexpr int64_t kBytePositions = 63, kShortPositions = kBytePositions * 260;

// Entry x of table v is popcount(v xor x), v and x nibbles; table v starts at byte 16 * v (A's nibble form).
struct Tables {
  alignas(16) uint8_t entries[16][16];
  constexpr Tables() : entries() {
    for (int v = 0; v < 16; ++v) {
      for (int x = 0; x < 16; ++x) {
        const int y = v ^ x;
        entries[v][x] = static_cast<uint8_t>((y & 1) + (y >> 1 & 1) + (y >> 2 & 1) + (y >> 3 & 1));
      }
    }
  }
};
constexpr Tables kTables;

// 16-bit counts of rows [0, R) (from `rows`, `positions` bytes each) against C nibble panels (from `panels`,
// panel_stride bytes apart) over positions [start, stop), at most kShortPositions of them, added to `shorts`:
// per row and panel, those of columns 0-7 and 16-23, then of 8-15 and 24-31 (vpunpck*bw's order).
template <int R, int C>
__attribute__((noinline)) void CountShorts(const uint8_t* rows, const uint8_t* panels, int64_t panel_stride,
                                           int64_t positions, int64_t start, int64_t stop,
                                           __m256i (&shorts)[R][C][2]) {
  const uint8_t* tables = &kTables.entries[0][0];
  for (int64_t chunk = start; chunk < stop; chunk += kBytePositions) {
    const int64_t end = stop < chunk + kBytePositions ? stop : chunk + kBytePositions;
    __m256i bytes[R][C];
    for (int r = 0; r < R; ++r) {
      for (int c = 0; c < C; ++c) bytes[r][c] = _mm256_setzero_si256();
    }
    for (int64_t p = chunk; p < end; ++p) {
      __m256i nibbles[C];
      for (int c = 0; c < C; ++c) {
        nibbles[c] =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panels + c * panel_stride + p * kNibbleColumns));
      }
      for (int r = 0; r < R; ++r) {
        const __m256i table = _mm256_broadcastsi128_si256(
            _mm_load_si128(reinterpret_cast<const __m128i*>(tables + rows[r * positions + p])));
        for (int c = 0; c < C; ++c) {
          bytes[r][c] = _mm256_add_epi8(_mm256_shuffle_epi8(table, nibbles[c]), bytes[r][c]);
        }
      }
      // Without this GCC copies every counter to another register at each position (4-6% slower).
      for (int r = 0; r < R; ++r) {
        for (int c = 0; c < C; ++c) __asm__("" : "+x"(bytes[r][c]));
      }
    }
    const __m256i zero = _mm256_setzero_si256();
    for (int r = 0; r < R; ++r) {
      for (int c = 0; c < C; ++c) {
        shorts[r][c][0] = _mm256_add_epi16(shorts[r][c][0], _mm256_unpacklo_epi8(bytes[r][c], zero));
        shorts[r][c][1] = _mm256_add_epi16(shorts[r][c][1], _mm256_unpackhi_epi8(bytes[r][c], zero));
      }
    }
  }
}

// Columns 8g to 8g + 7 of a panel from its 16-bit counts (CountShorts' order), as 32-bit counts.
inline __m256i WidenShorts(const __m256i (&shorts)[2], int g) {
  const __m256i s = shorts[g % 2];
  return _mm256_cvtepu16_epi32(g < 2 ? _mm256_castsi256_si128(s) : _mm256_extracti128_si256(s, 1));
}

// Fields of at most this many bits have dots that fit 16 bits, and so do their kind offsets taken modulo 2^16 (the
// sum is exact): packed outputs are then compared 16 columns per vector.
constexpr int32_t kShortDotBits = 32767;

// Byte tables (in both 128-bit lanes) of the low and high bytes of 16 kinds' offsets, for vpshufb by kind.
struct KindBytes {
  __m256i low, high;
};

inline KindBytes KindBytesOf(const int32_t* offsets) {
  // Per 128-bit lane: the low bytes of its 4 offsets, then their second bytes.
  const __m256i low_then_high = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, -1, -1, -1, -1, -1, -1, -1, -1,  //
                                                 0, 4, 8, 12, 1, 5, 9, 13, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i a = _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(offsets)), low_then_high);
  const __m256i b =
      _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(offsets + 8)), low_then_high);
  // Unpacked: low bytes of 0-3, 8-11, high bytes of 0-3, 8-11, then the same of 4-7, 12-15.
  const __m256i bytes =
      _mm256_permutevar8x32_epi32(_mm256_unpacklo_epi32(a, b), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  return {_mm256_permute2x128_si256(bytes, bytes, 0x00), _mm256_permute2x128_si256(bytes, bytes, 0x11)};
}

// 32 columns' int32 values from `values` in CountShorts' order as 16 bits: columns 0-7 and 16-23 (half 0), 8-15 and
// 24-31 (half 1); saturated, or else the low 16 bits.
template <bool kSaturate>
inline __m256i ShortsOf(const int32_t* values, int half) {
  const auto load = [&](int at) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(values + at)); };
  const __m256i a = load(8 * half), b = load(16 + 8 * half);
  __m256i pairs;  // a's 0-3, b's 0-3, a's 4-7, b's 4-7
  if constexpr (kSaturate) {
    pairs = _mm256_packs_epi32(a, b);
  } else {
    const __m256i low_words = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1,  //
                                               0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1);
    pairs = _mm256_unpacklo_epi64(_mm256_shuffle_epi8(a, low_words), _mm256_shuffle_epi8(b, low_words));
  }
  return _mm256_permute4x64_epi64(pairs, 0xd8);
}

// A tile row's 16-bit dots of a panel (its columns from `at` within the tile) from its 16-bit counts (CountShorts'
// order), in a field of at most kShortDotBits bits, with the kind offsets of its columns (`kinds`, when
// column_kinds) and of the row itself (row_offsets, when not null), taken modulo 2^16: the sum is exact.
inline void ShortDots(const __m256i (&counts)[2], int64_t at, __m256i bits, const uint8_t* column_kinds,
                      const KindBytes& kinds, const int32_t* row_offsets, __m256i (&dots)[2]) {
  for (int h = 0; h < 2; ++h) dots[h] = _mm256_sub_epi16(bits, _mm256_add_epi16(counts[h], counts[h]));
  if (column_kinds) {
    const __m256i k = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(column_kinds + at));
    const __m256i low = _mm256_shuffle_epi8(kinds.low, k), high = _mm256_shuffle_epi8(kinds.high, k);
    dots[0] = _mm256_add_epi16(dots[0], _mm256_unpacklo_epi8(low, high));
    dots[1] = _mm256_add_epi16(dots[1], _mm256_unpackhi_epi8(low, high));
  }
  for (int h = 0; row_offsets && h < 2; ++h) dots[h] = _mm256_add_epi16(dots[h], ShortsOf<false>(row_offsets + at, h));
}

// Stores the packed bits of row i's C panels of columns from j (filters: thresholds per column) from their 16-bit
// counts (CountShorts' order), in a field of at most kShortDotBits bits: the dots, their kind offsets and the
// thresholds in 16 bits, compared 16 columns per instruction, and a panel's 32 bits taken at once. Every output
// parameter is read before the row's first store: vector stores may alias anything, so read through `out` they
// would be loaded again after each.
template <int C>
inline __attribute__((always_inline)) void StoreShortRowBits(const GemmOutput& out, int64_t i, int64_t j,
                                                            const __m256i (&shorts)[C][2]) {
  const __m256i bits = _mm256_set1_epi16(static_cast<int16_t>(out.bits));
  const uint8_t* const column_kinds = out.column_kinds ? out.column_kinds + j : nullptr;
  KindBytes kinds{};
  if (column_kinds) kinds = KindBytesOf(out.kind_offsets + i * GemmOutput::kKinds);
  const int32_t* const row_offsets = RowKindOffsets(out, i, j);
  Word* const words = out.words + i * out.stride + j / kWordBits;
  const int32_t *const below = out.below + j, *const above = out.above + j;
  for (int c = 0; c < C; ++c) {
    const int64_t at = kNibbleColumns * c;
    __m256i dots[2];
    ShortDots(shorts[c], at, bits, column_kinds, kinds, row_offsets, dots);
    __m256i set[2];
    for (int h = 0; h < 2; ++h) {  // thresholds saturated to 16 bits: the dots lie within
      set[h] = _mm256_or_si256(_mm256_cmpgt_epi16(ShortsOf<true>(below + at, h), dots[h]),
                               _mm256_cmpgt_epi16(dots[h], ShortsOf<true>(above + at, h)));
    }
    // Packed to bytes, columns 0-31 in order.
    words[c] = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_packs_epi16(set[0], set[1])));
  }
}

// What a float call computes after multiplier and bias (GemmOutput), as bits of a template argument: tested
// at run time per vector they cost a 64@56 layer 9-11%.
enum FloatFeature { kRelu = 1, kPostAffine = 2, kResidual = 4, kFinalRelu = 8, kSigns = 16, kFloatFeatures = 32 };

int FloatFeaturesOf(const GemmOutput& out) {
  return (out.relu ? kRelu : 0) | (out.post_multiplier ? kPostAffine : 0) | (out.residual ? kResidual : 0) |
         (out.final_relu ? kFinalRelu : 0) | (out.sign_bits ? kSigns : 0);
}

// Whether StoreShortFloats stores a whole tile: fields of at most kShortDotBits bits, kinds of pixels as the
// columns (float rows) or as the rows (transposed), no column map (the implicit GEMM's, which takes the word kernel).
bool ShortFloats(const GemmOutput& out) {
  const bool other_kinds = out.transposed ? out.column_kinds != nullptr : out.row_kinds != nullptr;
  return out.bits <= kShortDotBits && !out.panel_valid && !other_kinds;
}

// Columns 8g to 8g + 7 of a panel from its 16-bit dots (CountShorts' order) as floats.
inline __m256 FloatsOf(const __m256i (&dots)[2], int g) {
  const __m256i d = dots[g % 2];
  return _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(g < 2 ? _mm256_castsi256_si128(d) : _mm256_extracti128_si256(d, 1)));
}

// float(dot) * multiplier + bias, then the features up to the residual: ReLU and the post affine.
template <int kFeatures>
inline __m256 Affine(__m256 dot, __m256 multiplier, __m256 bias, __m256 post_multiplier, __m256 post_bias) {
  __m256 y = _mm256_add_ps(_mm256_mul_ps(dot, multiplier), bias);
  // max(0, y) is 0 > y ? 0 : y: NaN and -0.0 pass through, as `y < 0 ? 0 : y` does.
  if constexpr ((kFeatures & kRelu) != 0) y = _mm256_max_ps(_mm256_setzero_ps(), y);
  if constexpr ((kFeatures & kPostAffine) != 0) y = _mm256_add_ps(_mm256_mul_ps(y, post_multiplier), post_bias);
  return y;
}

// The features from the residual on (residual: its 8 values, when kResidual), and y's sign mask.
template <int kFeatures>
inline __m256 Finished(__m256 y, __m256 residual, uint32_t& signs, int shift) {
  if constexpr ((kFeatures & kResidual) != 0) y = _mm256_add_ps(y, residual);
  if constexpr ((kFeatures & kFinalRelu) != 0) y = _mm256_max_ps(_mm256_setzero_ps(), y);
  if constexpr ((kFeatures & kSigns) != 0) {
    signs |= static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(y, _mm256_setzero_ps(), _CMP_LT_OQ))) << shift;
  }
  return y;
}

// Float rows [i, i + R) (filters) and the C whole panels from column j (pixels).
template <int R, int C, int kFeatures>
inline __attribute__((always_inline)) void StoreShortFloatRows(const GemmOutput& out, int64_t i, int64_t j,
                                                              const __m256i (&shorts)[R][C][2]) {
  const __m256i bits = _mm256_set1_epi16(static_cast<int16_t>(out.bits));
  const uint8_t* const column_kinds = out.column_kinds ? out.column_kinds + j : nullptr;
  const int32_t* const kind_offsets = column_kinds ? out.kind_offsets + i * GemmOutput::kKinds : nullptr;
  const int64_t stride = out.stride, sign_stride = out.sign_stride;
  float* const floats = out.floats + i * stride + j;
  const float* const residual = (kFeatures & kResidual) != 0 ? out.residual + i * stride + j : nullptr;
  uint16_t* const sign_bits = (kFeatures & kSigns) != 0 ? out.sign_bits + j / kPanelLanes * sign_stride + i : nullptr;
  const float *const multipliers = out.multiplier + i, *const biases = out.bias + i;
  const bool post = (kFeatures & kPostAffine) != 0;
  const float *const post_multipliers = post ? out.post_multiplier + i : nullptr;
  const float* const post_biases = post ? out.post_bias + i : nullptr;
  for (int r = 0; r < R; ++r) {
    KindBytes kinds{};
    if (column_kinds) kinds = KindBytesOf(kind_offsets + r * GemmOutput::kKinds);
    const __m256 multiplier = _mm256_set1_ps(multipliers[r]), bias = _mm256_set1_ps(biases[r]);
    const __m256 post_multiplier = _mm256_set1_ps(post ? post_multipliers[r] : 0.0f);
    const __m256 post_bias = _mm256_set1_ps(post ? post_biases[r] : 0.0f);
    for (int c = 0; c < C; ++c) {
      __m256i dots[2];
      ShortDots(shorts[r][c], kNibbleColumns * c, bits, column_kinds, kinds, nullptr, dots);
      uint32_t signs = 0;
      for (int g = 0; g < 4; ++g) {  // the panel's columns 8g to 8g + 7
        const int64_t at = r * stride + kNibbleColumns * c + 8 * g;
        const __m256 y = Affine<kFeatures>(FloatsOf(dots, g), multiplier, bias, post_multiplier, post_bias);
        const __m256 add = residual ? _mm256_loadu_ps(residual + at) : __m256{};
        _mm256_storeu_ps(floats + at, Finished<kFeatures>(y, add, signs, 8 * g));
      }
      if (sign_bits) {
        sign_bits[2 * c * sign_stride + r] = static_cast<uint16_t>(signs);
        sign_bits[(2 * c + 1) * sign_stride + r] = static_cast<uint16_t>(signs >> 16);
      }
    }
  }
}

// Transposed floats of rows [i, i + 4) (pixels) and the C whole panels from column j (filters): filter f's row of
// the output gets pixel i's float at f * stride + i. Each filter's 4 floats are consecutive there, so the 4 rows'
// vectors of 8 filters are transposed in registers (Transpose4x4InLanes) and stored 4 floats at a time; the
// residual is read the same way.
template <int C, int kFeatures>
inline __attribute__((always_inline)) void StoreShortFloatColumns(const GemmOutput& out, int64_t i, int64_t j,
                                                                 const __m256i (&shorts)[4][C][2]) {
  const __m256i bits = _mm256_set1_epi16(static_cast<int16_t>(out.bits));
  const int64_t stride = out.stride, sign_stride = out.sign_stride;
  float* const floats = out.floats + j * stride + i;
  const float* const residual = (kFeatures & kResidual) != 0 ? out.residual + j * stride + i : nullptr;
  uint16_t* const sign_bits = (kFeatures & kSigns) != 0 ? out.sign_bits + i * sign_stride + j / kPanelLanes : nullptr;
  const float *const multipliers = out.multiplier + j, *const biases = out.bias + j;
  const bool post = (kFeatures & kPostAffine) != 0;
  const float *const post_multipliers = post ? out.post_multiplier + j : nullptr;
  const float* const post_biases = post ? out.post_bias + j : nullptr;
  const int32_t* row_offsets[4];
  for (int r = 0; r < 4; ++r) row_offsets[r] = RowKindOffsets(out, i + r, j);
  uint32_t signs[4][C] = {};
  for (int c = 0; c < C; ++c) {
    __m256i dots[4][2];
    for (int r = 0; r < 4; ++r) {
      ShortDots(shorts[r][c], kNibbleColumns * c, bits, nullptr, KindBytes{}, row_offsets[r], dots[r]);
    }
    for (int g = 0; g < 4; ++g) {  // the panel's columns 8g to 8g + 7
      const int64_t at = kNibbleColumns * c + 8 * g;
      const __m256 multiplier = _mm256_loadu_ps(multipliers + at), bias = _mm256_loadu_ps(biases + at);
      const __m256 post_multiplier = post ? _mm256_loadu_ps(post_multipliers + at) : __m256{};
      const __m256 post_bias = post ? _mm256_loadu_ps(post_biases + at) : __m256{};
      __m256 ys[4], adds[4] = {};
      for (int r = 0; r < 4; ++r) {
        ys[r] = Affine<kFeatures>(FloatsOf(dots[r], g), multiplier, bias, post_multiplier, post_bias);
      }
      if (residual) {
        for (int l = 0; l < 4; ++l) {
          adds[l] = _mm256_loadu2_m128(residual + (at + l + 4) * stride, residual + (at + l) * stride);
        }
        Transpose4x4InLanes(adds);
      }
      for (int r = 0; r < 4; ++r) ys[r] = Finished<kFeatures>(ys[r], adds[r], signs[r][c], 8 * g);
      Transpose4x4InLanes(ys);
      for (int l = 0; l < 4; ++l) {
        _mm256_storeu2_m128(floats + (at + l + 4) * stride, floats + (at + l) * stride, ys[l]);
      }
    }
  }
  for (int r = 0; sign_bits && r < 4; ++r) {
    for (int c = 0; c < C; ++c) {
      sign_bits[r * sign_stride + 2 * c] = static_cast<uint16_t>(signs[r][c]);
      sign_bits[r * sign_stride + 2 * c + 1] = static_cast<uint16_t>(signs[r][c] >> 16);
    }
  }
}

// The floats of a whole tile from its 16-bit counts (ShortFloats), widened to 32 bits 8 columns at a time. Every
// output parameter is read before the first store (StoreShortRowBits says why).
template <int R, int C, bool kTransposed, int kFeatures>
__attribute__((noinline)) void StoreShortFloats(const GemmOutput& out, int64_t i, int64_t j,
                                                const __m256i (&shorts)[R][C][2]) {
  if constexpr (kTransposed) {
    StoreShortFloatColumns<C, kFeatures>(out, i, j, shorts);
  } else {
    StoreShortFloatRows<R, C, kFeatures>(out, i, j, shorts);
  }
}

// StoreShortFloats<R, C, kTransposed, features> by features.
template <int R, int C, bool kTransposed>
struct ShortFloatsFns {
  using Fn = void (*)(const GemmOutput&, int64_t, int64_t, const __m256i (&)[R][C][2]);
  Fn by_features[kFloatFeatures];
  template <int kFeatures = 0>
  constexpr void Fill() {
    by_features[kFeatures] = &StoreShortFloats<R, C, kTransposed, kFeatures>;
    if constexpr (kFeatures + 1 < kFloatFeatures) Fill<kFeatures + 1>();
  }
  constexpr ShortFloatsFns() : by_features() { Fill(); }
};

// Rows [i, i + R) of A (from `rows`, `positions` bytes each) against C nibble panels (from `panels`, panel_stride
// bytes apart): the columns [j, j + lanes) of the call.
template <int R, int C, StoreForm kForm>
__attribute__((noinline)) void Tile(const uint8_t* rows, const uint8_t* panels, int64_t panel_stride,
                                    int64_t positions, const GemmOutput& out, int64_t i, int64_t j, int64_t lanes) {
  // The last run of positions' 16-bit counts and, in fields of more than kShortPositions, the 32-bit counts of
  // the runs before it (per row and panel: columns 0-7, 8-15, 16-23 and 24-31). Packed outputs use the 16-bit
  // counts as they are; the other forms widen them where they store them (`counts`).
  const bool long_field = positions > kShortPositions;
  __m256i shorts[R][C][2], earlier[R][C][4];
  for (int64_t start = 0;; start += kShortPositions) {
    for (int r = 0; r < R; ++r) {
      for (int c = 0; c < C; ++c) shorts[r][c][0] = shorts[r][c][1] = _mm256_setzero_si256();
    }
    const int64_t stop = positions < start + kShortPositions ? positions : start + kShortPositions;
    CountShorts<R, C>(rows, panels, panel_stride, positions, start, stop, shorts);
    if (stop == positions) break;
    for (int r = 0; r < R; ++r) {
      for (int c = 0; c < C; ++c) {
        for (int g = 0; g < 4; ++g) {
          const __m256i counts = WidenShorts(shorts[r][c], g);
          earlier[r][c][g] = start == 0 ? counts : _mm256_add_epi32(earlier[r][c][g], counts);
        }
      }
    }
  }
  // Row r's 32-bit counts of the tile's columns 8v to 8v + 7.
  const auto counts = [&](int r, int v) {
    const __m256i last = WidenShorts(shorts[r][v / 4], v % 4);
    return long_field ? _mm256_add_epi32(earlier[r][v / 4][v % 4], last) : last;
  };
  if (kForm == StoreForm::kBits && out.words && lanes == C * kNibbleColumns && !long_field &&
      out.bits <= kShortDotBits) {
    for (int r = 0; r < R; ++r) StoreShortRowBits<C>(out, i + r, j, shorts[r]);
    return;
  }
  // Whole 4-row tiles only: the 1-row ones (a remainder of rows) would double the stores' code for little.
  constexpr bool kFloats = (kForm == StoreForm::kFloatRows || kForm == StoreForm::kFloatColumns) && R == kTileRows;
  if constexpr (kFloats) {
    if (lanes == C * kNibbleColumns && !long_field && ShortFloats(out)) {
      static constexpr ShortFloatsFns<R, C, kForm == StoreForm::kFloatColumns> kFns;
      kFns.by_features[FloatFeaturesOf(out)](out, i, j, shorts);
      return;
    }
  }
  // A row's columns are stored at once where the tile is whole and the form allows (the same for every row of a
  // call), transposed floats 4 rows at once, else a run of 16 at a time. Not unrolled: the tile's code would no
  // longer fit the op cache (measured 1.1-1.4x slower unrolled).
  if constexpr (kForm == StoreForm::kFloatColumns && R == 4) {
    if (lanes == C * kNibbleColumns) {
      __m256i rows_counts[4][4 * C];
      for (int r = 0; r < 4; ++r) {
        for (int v = 0; v < 4 * C; ++v) rows_counts[r][v] = counts(r, v);
      }
      StoreColumnsOf4Rows<2 * C>(out, i, j, rows_counts);
      return;
    }
  }
  if (kForm != StoreForm::kFloatColumns && lanes == C * kNibbleColumns) {
    int r = 0;
#pragma GCC unroll 1
    for (; r < R; ++r) {
      __m256i row[4 * C];
      for (int v = 0; v < 4 * C; ++v) row[v] = counts(r, v);
      if (!StorePanel<kForm, 2 * C>(out, i + r, j, row)) break;
    }
    if (r == R) return;
  }
#pragma GCC unroll 1
  for (int v = 0; v < R * 2 * C; ++v) {  // row v / 2C, its columns 16 (v % 2C) to 16 (v % 2C) + 15
    const int r = v / (2 * C), run = v % (2 * C);
    const int64_t first = kPanelLanes * run;
    if (first >= lanes) continue;
    const __m256i run_counts[2] = {counts(r, 2 * run), counts(r, 2 * run + 1)};
    StoreCounts<kForm>(out, i + r, j + first, run_counts, lanes - first < kPanelLanes ? lanes - first : kPanelLanes);
  }
}

// Word k of a panel's 16 lanes (x[0]: lanes 0-7, x[1]: 8-15) as positions 8k to 8k + 7 of half `half` of a nibble
// panel.
inline void HalfOfPanel(const __m256i (&x)[2], int64_t k, uint8_t* nibble_panel, int64_t half) {
  const __m256i low_nibbles = _mm256_set1_epi8(0x0f);
  // Within each 128-bit lane, byte q of its 4 words to dword q.
  const __m256i by_byte = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,  //
                                           0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  // Unpacked, the dwords hold byte q of lanes 0-3, 8-11, byte q + 1 of 0-3, 8-11, then the same of 4-7, 12-15.
  const __m256i in_order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  uint8_t* out = nibble_panel + half * kPanelLanes;
  for (int h = 0; h < 2; ++h) {  // low nibbles, then high ones
    __m256i y[2];
    for (int v = 0; v < 2; ++v) {
      const __m256i nibbles = h == 0 ? x[v] : _mm256_srli_epi32(x[v], 4);
      y[v] = _mm256_shuffle_epi8(_mm256_and_si256(nibbles, low_nibbles), by_byte);
    }
    // Bytes 0 and 1 of lanes 0-15, then bytes 2 and 3: one position per 128-bit half.
    const __m256i pairs[2] = {_mm256_permutevar8x32_epi32(_mm256_unpacklo_epi32(y[0], y[1]), in_order),
                              _mm256_permutevar8x32_epi32(_mm256_unpackhi_epi32(y[0], y[1]), in_order)};
    for (int q = 0; q < 4; ++q) {
      const __m256i pair = pairs[q / 2];
      const __m128i lanes = q % 2 == 0 ? _mm256_castsi256_si128(pair) : _mm256_extracti128_si256(pair, 1);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + (8 * k + 4 * h + q) * kNibbleColumns), lanes);
    }
  }
}

// Word k of a panel's 16 lanes as positions 8k to 8k + 7 of the nibble rows of its first `rows` lanes.
inline void RowsOfPanel(const __m256i (&x)[2], int64_t k, int64_t rows, uint8_t* nibble_rows, int64_t positions) {
  const __m256i high_nibbles = _mm256_set1_epi8(static_cast<char>(0xf0));
  for (int v = 0; v < 2; ++v) {
    const __m256i low = _mm256_and_si256(_mm256_slli_epi32(x[v], 4), high_nibbles);
    const __m256i high = _mm256_and_si256(x[v], high_nibbles);
    // Each lane's 8 bytes: its low nibbles' offsets, then its high nibbles'. Lanes 0, 1, 4, 5, then 2, 3, 6, 7.
    const __m256i pairs[2] = {_mm256_unpacklo_epi32(low, high), _mm256_unpackhi_epi32(low, high)};
    for (int p = 0; p < 2; ++p) {
      for (int half = 0; half < 2; ++half) {
        const __m128i two = half == 0 ? _mm256_castsi256_si128(pairs[p]) : _mm256_extracti128_si256(pairs[p], 1);
        const int64_t lane = 8 * v + 4 * half + 2 * p;
        if (lane < rows) _mm_storel_epi64(reinterpret_cast<__m128i*>(nibble_rows + lane * positions + 8 * k), two);
        if (lane + 1 < rows) {
          _mm_storeh_pd(reinterpret_cast<double*>(nibble_rows + (lane + 1) * positions + 8 * k), _mm_castsi128_pd(two));
        }
      }
    }
  }
}

// All-ones in the 32-bit lanes l < 8 of half `half` whose bit half * 8 + l is set in `mask`.
inline __m256i LaneMask(uint16_t mask, int half) {
  const __m256i lane_bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256i bits = _mm256_and_si256(_mm256_set1_epi32(mask >> (8 * half)), lane_bits);
  return _mm256_cmpeq_epi32(bits, lane_bits);
}

// Calls emit(x, k) for each word k = t * tap_words + c of a panel's 16 receptive fields (GatherPanelFn's
// arguments; pixel_stride: the image's words per pixel), x[0] holding lanes 0-7 and x[1] lanes 8-15. Where a tap
// lies inside the image for every lane and the lanes are consecutive pixels of 1, 2 or 4 words (a stride-1 row of
// up to 128 channels), its words come from plain loads; else from masked gathers (8 lanes each, a few times
// slower).
template <class Emit>
void ForFieldWords(const Word* image, const int32_t* lane_offsets, const int32_t* tap_offsets,
                   const uint16_t* tap_masks, int64_t taps, int64_t tap_words, int64_t pixel_stride, Emit&& emit) {
  const __m256i lanes[2] = {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(lane_offsets)),
                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lane_offsets + 8))};
  bool consecutive = pixel_stride == tap_words && (tap_words == 1 || tap_words == 2 || tap_words == 4);
  for (int l = 1; consecutive && l < kPanelLanes; ++l) consecutive = lane_offsets[l] == lane_offsets[0] + l * tap_words;
  const int* base = reinterpret_cast<const int*>(image);
  // Unpacked 4-word lanes hold lanes 0, 2, 4, 6 in their low 128 bits and 1, 3, 5, 7 in their high ones.
  const __m256i in_order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t t = 0; t < taps; ++t) {
    if (consecutive && tap_masks[t] == 0xffff) {
      const Word* first = image + lane_offsets[0] + tap_offsets[t];
      const auto load = [&](int64_t at) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(first + at)); };
      __m256i x[4][2];
      for (int h = 0; h < 2; ++h) {  // lanes 8h to 8h + 7
        if (tap_words == 1) {
          x[0][h] = load(8 * h);
        } else if (tap_words == 2) {
          const __m256 a = _mm256_castsi256_ps(load(16 * h)), b = _mm256_castsi256_ps(load(16 * h + 8));
          x[0][h] = _mm256_permute4x64_epi64(_mm256_castps_si256(_mm256_shuffle_ps(a, b, 0x88)), 0xd8);
          x[1][h] = _mm256_permute4x64_epi64(_mm256_castps_si256(_mm256_shuffle_ps(a, b, 0xdd)), 0xd8);
        } else {  // 4 words: each load is 2 lanes' words
          const __m256i r[4] = {load(32 * h), load(32 * h + 8), load(32 * h + 16), load(32 * h + 24)};
          const __m256i low[2] = {_mm256_unpacklo_epi32(r[0], r[1]), _mm256_unpacklo_epi32(r[2], r[3])};
          const __m256i high[2] = {_mm256_unpackhi_epi32(r[0], r[1]), _mm256_unpackhi_epi32(r[2], r[3])};
          x[0][h] = _mm256_permutevar8x32_epi32(_mm256_unpacklo_epi64(low[0], low[1]), in_order);
          x[1][h] = _mm256_permutevar8x32_epi32(_mm256_unpackhi_epi64(low[0], low[1]), in_order);
          x[2][h] = _mm256_permutevar8x32_epi32(_mm256_unpacklo_epi64(high[0], high[1]), in_order);
          x[3][h] = _mm256_permutevar8x32_epi32(_mm256_unpackhi_epi64(high[0], high[1]), in_order);
        }
      }
      for (int64_t c = 0; c < tap_words; ++c) emit(x[c], t * tap_words + c);
      continue;
    }
    const __m256i inside[2] = {LaneMask(tap_masks[t], 0), LaneMask(tap_masks[t], 1)};
    for (int64_t c = 0; c < tap_words; ++c) {
      const __m256i offset = _mm256_set1_epi32(static_cast<int>(tap_offsets[t] + c));
      __m256i x[2];
      for (int h = 0; h < 2; ++h) {
        // Lanes outside the mask are not read (no fault for a padded tap) and come out as zero words.
        const __m256i index = _mm256_add_epi32(lanes[h], offset);
        x[h] = _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), base, index, inside[h], 4);
      }
      emit(x, t * tap_words + c);
    }
  }
}

void Rows(const Word* a, int64_t a_stride, int64_t a_step, int64_t m, int64_t words, uint8_t* rows) {
  for (int64_t i = 0; i < m; ++i) {
    uint8_t* row = rows + i * NibblePositions(words);
    for (int64_t k = 0; k < words; ++k) {
      const Word w = a[i * a_stride + k * a_step];
      // Byte by byte: 16 times the low nibble (positions 8k to 8k + 3), then 16 times the high one.
      const Word low = (w << 4) & 0xf0f0f0f0u, high = w & 0xf0f0f0f0u;
      __builtin_memcpy(row + 8 * k, &low, 4);
      __builtin_memcpy(row + 8 * k + 4, &high, 4);
    }
  }
}

// Zeros half 1 of a nibble panel (its columns 16-31), where no panel of words fills it.
inline void ZeroSecondHalf(uint8_t* nibble_panel, int64_t positions) {
  for (int64_t p = 0; p < positions; ++p) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(nibble_panel + p * kNibbleColumns + kPanelLanes), _mm_setzero_si128());
  }
}

void Panels(const Word* panels, int64_t n, int64_t words, uint8_t* nibble_panels) {
  const int64_t word_panels = (n + kPanelLanes - 1) / kPanelLanes;
  for (int64_t q = 0; q < word_panels; ++q) {
    const Word* panel = panels + q * words * kPanelLanes;
    uint8_t* nibble_panel = nibble_panels + q / 2 * NibblePanelBytes(words);
    for (int64_t k = 0; k < words; ++k) {
      const __m256i x[2] = {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + k * kPanelLanes)),
                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + k * kPanelLanes + 8))};
      HalfOfPanel(x, k, nibble_panel, q % 2);
    }
    if (q % 2 == 0 && q == word_panels - 1) ZeroSecondHalf(nibble_panel, NibblePositions(words));
  }
}

void GatherHalf(const Word* image, const int32_t* lane_offsets, const int32_t* tap_offsets, const uint16_t* tap_masks,
                int64_t taps, int64_t tap_words, int64_t pixel_stride, uint8_t* nibble_panel, int64_t half,
                bool last) {
  ForFieldWords(image, lane_offsets, tap_offsets, tap_masks, taps, tap_words, pixel_stride,
                [&](const __m256i(&x)[2], int64_t k) { HalfOfPanel(x, k, nibble_panel, half); });
  if (half == 0 && last) ZeroSecondHalf(nibble_panel, NibblePositions(taps * tap_words));
}

void GatherRows(const Word* image, const int32_t* lane_offsets, const int32_t* tap_offsets, const uint16_t* tap_masks,
                int64_t taps, int64_t tap_words, int64_t pixel_stride, uint8_t* nibble_rows, int64_t rows) {
  const int64_t positions = NibblePositions(taps * tap_words);
  ForFieldWords(image, lane_offsets, tap_offsets, tap_masks, taps, tap_words, pixel_stride,
                [&](const __m256i(&x)[2], int64_t k) { RowsOfPanel(x, k, rows, nibble_rows, positions); });
}

void Gemm(const uint8_t* rows, int64_t m, const uint8_t* panels, int64_t n, int64_t positions, const GemmOutput& out) {
  const int64_t panel_stride = positions * kNibbleColumns;
  ForStoreForm(out, [&](auto form) {
    for (int64_t j = 0; j < n; j += 2 * kNibbleColumns) {
      const uint8_t* pair = panels + j / kNibbleColumns * panel_stride;
      const int64_t lanes = n - j < 2 * kNibbleColumns ? n - j : 2 * kNibbleColumns;
      const auto tile = [&](auto tile_rows, int64_t i) {
        constexpr int R = decltype(tile_rows)::value;
        if (lanes > kNibbleColumns) {
          Tile<R, 2, form.value>(rows + i * positions, pair, panel_stride, positions, out, i, j, lanes);
        } else {
          Tile<R, 1, form.value>(rows + i * positions, pair, panel_stride, positions, out, i, j, lanes);
        }
      };
      int64_t i = 0;
      for (; i + kTileRows <= m; i += kTileRows) tile(std::integral_constant<int, kTileRows>{}, i);
      for (; i < m; ++i) tile(std::integral_constant<int, 1>{}, i);
    }
  });
}

}  // namespace

const NibbleKernel kNibbleKernelAvx2 = {Rows, Panels, GatherHalf, GatherRows, Gemm};

}  // namespace bnn2onnx
