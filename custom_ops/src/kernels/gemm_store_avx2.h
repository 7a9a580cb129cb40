// The AVX2 kernels' output stage (bgemm_avx2.cc, bgemm_tables_avx2.cc): a tile's 32-bit counts of runs of 16
// columns stored as GemmOutput says, in vectors where the form allows, with the arithmetic of StoreRun
// (gemm_store.h). Built with -mavx2 only; internal linkage (gemm_store.h says why).
//
// Every value a store needs is read before the first vector store: the stores' vector types may alias anything,
// so the compiler would read the output's parameters again after each.
#pragma once

#include <immintrin.h>

#include <type_traits>

#include "kernels/gemm_store.h"

namespace bnn2onnx {
namespace {

// What a GEMM call stores (GemmOutput), known once per call so that each tile's stores are compiled for it.
enum class StoreForm { kBits, kFloatRows, kFloatColumns, kOther };

StoreForm FormOf(const GemmOutput& out) {
  if (out.words != nullptr || out.lane_bits != nullptr) return StoreForm::kBits;
  if (out.floats == nullptr) return StoreForm::kOther;
  return out.transposed ? StoreForm::kFloatColumns : StoreForm::kFloatRows;
}

// Row i's border offsets by kind of pixel as rows (GemmOutput::row_kinds) for the columns from j, or null where
// row i is no border pixel.
inline const int32_t* RowKindOffsets(const GemmOutput& out, int64_t i, int64_t j) {
  const int32_t kind = out.row_kinds ? out.row_kinds[i] : 0;
  return kind != 0 ? out.kind_offsets + kind * out.kinds_stride + j : nullptr;
}

// Row i's dot products of the kVectors runs of 8 columns from j (counts[v]: columns j + 8v to j + 8v + 7).
template <int kVectors>
inline __attribute__((always_inline)) void Dots(const GemmOutput& out, int64_t i, int64_t j,
                                               const __m256i (&counts)[kVectors], __m256i (&dots)[kVectors]) {
  const __m256i bits = _mm256_set1_epi32(out.bits);
  const int32_t* const row_offsets = RowKindOffsets(out, i, j);
  for (int v = 0; v < kVectors; ++v) {
    dots[v] = _mm256_sub_epi32(bits, _mm256_add_epi32(counts[v], counts[v]));
    const int64_t at = j + 8 * v;
    if (row_offsets) {
      dots[v] = _mm256_add_epi32(dots[v], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row_offsets + 8 * v)));
    }
    if (out.column_kinds) {
      // Offsets of 16 kinds: the kind's low 3 bits pick within each half of the row's table, bit 3 the half.
      const __m256i kinds =
          _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(out.column_kinds + at)));
      const int32_t* table = out.kind_offsets + i * GemmOutput::kKinds;
      const __m256i low =
          _mm256_permutevar8x32_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(table)), kinds);
      const __m256i high =
          _mm256_permutevar8x32_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(table + 8)), kinds);
      const __m256i upper = _mm256_cmpgt_epi32(kinds, _mm256_set1_epi32(7));
      dots[v] = _mm256_add_epi32(dots[v], _mm256_blendv_epi8(low, high, upper));
    }
  }
}

// Packed bits of those dots: thresholds per column (words), or per row (lane_bits).
template <int kVectors>
inline __attribute__((always_inline)) void StoreBits(const GemmOutput& out, int64_t i, int64_t j,
                                                    const __m256i (&dots)[kVectors]) {
  uint16_t runs[kVectors / 2] = {};
  for (int v = 0; v < kVectors; ++v) {
    const __m256i below = out.lane_bits ? _mm256_set1_epi32(out.below[i])
                                        : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(out.below + j + 8 * v));
    const __m256i above = out.lane_bits ? _mm256_set1_epi32(out.above[i])
                                        : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(out.above + j + 8 * v));
    const __m256i set = _mm256_or_si256(_mm256_cmpgt_epi32(below, dots[v]), _mm256_cmpgt_epi32(dots[v], above));
    runs[v / 2] |= static_cast<uint16_t>(_mm256_movemask_ps(_mm256_castsi256_ps(set)) << (8 * (v % 2)));
  }
  for (int g = 0; g < kVectors / 2; ++g) {
    const int64_t run_j = j + kPanelLanes * g;
    if (out.lane_bits) {
      out.lane_bits[run_j / kPanelLanes * out.stride + i] = runs[g];
    } else {  // 16 columns from run_j (a multiple of 16) are one half of a word: x86 is little-endian.
      reinterpret_cast<uint16_t*>(out.words + i * out.stride + run_j / kWordBits)[run_j / kPanelLanes % 2] = runs[g];
    }
  }
}

// Row i's float results from those dots, and their signs stored when asked for. Float rows: at output columns
// columns[v] (j + 8v, or through the column map). Transposed (filters as lanes: lane l is filter j + l, whose row
// gets pixel i's float; `columns` unused): per-channel values per lane, the residual gathered.
template <bool kTransposed, int kVectors>
inline __attribute__((always_inline)) void FloatResults(const GemmOutput& out, int64_t i, int64_t j,
                                                       const __m256i (&dots)[kVectors], const int64_t* columns,
                                                       __m256 (&ys)[kVectors]) {
  // A per-channel vector for the 8 lanes of vector v: row i's value in every lane, or (transposed) each lane's
  // filter's.
  const auto per_channel = [&](const float* values, int v) {
    return kTransposed ? _mm256_loadu_ps(values + j + 8 * v) : _mm256_set1_ps(values[i]);
  };
  // Transposed: lane l's float is `stride` floats after lane l - 1's (8 * stride fits int32: see the caller).
  const __m256i lane_rows = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                               _mm256_set1_epi32(static_cast<int>(out.stride)));
  for (int v = 0; v < kVectors; ++v) {
    __m256 y = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(dots[v]), per_channel(out.multiplier, v)),
                             per_channel(out.bias, v));
    // max(0, y) is 0 > y ? 0 : y: NaN and -0.0 pass through, as `y < 0 ? 0 : y` does.
    if (out.relu) y = _mm256_max_ps(_mm256_setzero_ps(), y);
    if (out.post_multiplier) {
      y = _mm256_add_ps(_mm256_mul_ps(y, per_channel(out.post_multiplier, v)), per_channel(out.post_bias, v));
    }
    if (out.residual) {
      y = _mm256_add_ps(y, kTransposed ? _mm256_i32gather_ps(out.residual + (j + 8 * v) * out.stride + i, lane_rows, 4)
                                       : _mm256_loadu_ps(out.residual + i * out.stride + columns[v]));
    }
    if (out.final_relu) y = _mm256_max_ps(_mm256_setzero_ps(), y);
    ys[v] = y;
  }
  for (int g = 0; out.sign_bits && g < kVectors / 2; ++g) {
    uint32_t signs = 0;
    for (int h = 0; h < 2; ++h) {
      signs |= static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(ys[2 * g + h], _mm256_setzero_ps(), _CMP_LT_OQ)))
               << (8 * h);
    }
    SignsOf(out, i, j + kPanelLanes * g) = static_cast<uint16_t>(signs);
  }
}

// The common stores of kGroups whole runs of 16 columns from j (a multiple of 16) of row i, in vectors: packed bits
// (words or lane bits), float rows (not transposed, no row kinds), and transposed floats, scattered one by one. The
// others return false: StoreRun's. Inlined into the tile (a call per row and panel cost 5-10% of a 64@56 layer),
// except the transposed floats' scalar stores (StoreColumnsPanel), which slowed the tile down inlined (512@7: 3-5%).
template <StoreForm kForm, int kGroups = 1>
inline __attribute__((always_inline)) bool StorePanel(const GemmOutput& out, int64_t i, int64_t j,
                                                     const __m256i (&counts)[2 * kGroups]) {
  constexpr int kVectors = 2 * kGroups;
  if constexpr (kForm == StoreForm::kOther) return false;
  // Float rows through a column map only where the runs are all output pixels.
  const bool mapped = out.panel_valid != nullptr;
  if (kForm == StoreForm::kFloatRows && out.row_kinds) return false;
  for (int g = 0; kForm == StoreForm::kFloatRows && mapped && g < kGroups; ++g) {
    if (out.panel_valid[j / kPanelLanes + g] != 0xffff) return false;
  }
  __m256i dots[kVectors];
  Dots(out, i, j, counts, dots);
  if constexpr (kForm == StoreForm::kBits) {
    StoreBits(out, i, j, dots);
    return true;
  }
  constexpr bool transposed = kForm == StoreForm::kFloatColumns;
  int64_t columns[kVectors];  // float rows' output columns
  for (int v = 0; !transposed && v < kVectors; ++v) {
    columns[v] = mapped ? out.panel_first[j / kPanelLanes + v / 2] + 8 * (v % 2) : j + 8 * v;
  }
  __m256 ys[kVectors];
  FloatResults<transposed>(out, i, j, dots, columns, ys);
  for (int v = 0; v < kVectors; ++v) {
    if constexpr (transposed) {  // AVX2 has no scatter
      alignas(32) float lanes[8];
      _mm256_store_ps(lanes, ys[v]);
      for (int l = 0; l < 8; ++l) out.floats[(j + 8 * v + l) * out.stride + i] = lanes[l];
    } else {
      _mm256_storeu_ps(out.floats + i * out.stride + columns[v], ys[v]);
    }
  }
  return true;
}

__attribute__((noinline)) bool StoreColumnsPanel(const GemmOutput& out, int64_t i, int64_t j,
                                                 const __m256i (&counts)[2]) {
  return StorePanel<StoreForm::kFloatColumns>(out, i, j, counts);
}

// x[r] lane l to x[l] lane r within each 128-bit half: 4 rows of 8 columns to, per x[l], column l (low half) and
// column l + 4 (high half) of the 4 rows. Its own inverse.
inline void Transpose4x4InLanes(__m256 (&x)[4]) {
  const __m256 low01 = _mm256_unpacklo_ps(x[0], x[1]), high01 = _mm256_unpackhi_ps(x[0], x[1]);
  const __m256 low23 = _mm256_unpacklo_ps(x[2], x[3]), high23 = _mm256_unpackhi_ps(x[2], x[3]);
  x[0] = _mm256_shuffle_ps(low01, low23, 0x44), x[1] = _mm256_shuffle_ps(low01, low23, 0xee);
  x[2] = _mm256_shuffle_ps(high01, high23, 0x44), x[3] = _mm256_shuffle_ps(high01, high23, 0xee);
}

// Transposed floats of 4 consecutive rows from i (pixels) and the kGroups whole runs of 16 columns from j (filters):
// each filter's 4 floats are consecutive in its row of the output, so a 4 x 8 transpose in registers stores them
// 4 at a time instead of one by one.
template <int kGroups>
inline __attribute__((always_inline)) void StoreColumnsOf4Rows(const GemmOutput& out, int64_t i, int64_t j,
                                                              const __m256i (&counts)[4][2 * kGroups]) {
  constexpr int kVectors = 2 * kGroups;
  __m256 ys[4][kVectors];
  for (int r = 0; r < 4; ++r) {
    __m256i dots[kVectors];
    Dots(out, i + r, j, counts[r], dots);
    FloatResults<true>(out, i + r, j, dots, nullptr, ys[r]);
  }
  for (int v = 0; v < kVectors; ++v) {
    __m256 by_column[4] = {ys[0][v], ys[1][v], ys[2][v], ys[3][v]};
    Transpose4x4InLanes(by_column);
    float* const first = out.floats + (j + 8 * v) * out.stride + i;
    for (int l = 0; l < 4; ++l) _mm256_storeu2_m128(first + (l + 4) * out.stride, first + l * out.stride, by_column[l]);
  }
}

// Stores the counts of row i's columns [j, j + lanes), lanes <= 16: in vectors when the run is whole and the form
// allows, else through StoreRun.
template <StoreForm kForm>
inline __attribute__((always_inline)) void StoreCounts(const GemmOutput& out, int64_t i, int64_t j,
                                                      const __m256i (&counts)[2], int64_t lanes) {
  if (lanes == kPanelLanes && (kForm == StoreForm::kFloatColumns ? StoreColumnsPanel(out, i, j, counts)
                                                                  : StorePanel<kForm>(out, i, j, counts))) {
    return;
  }
  alignas(32) int32_t lane_counts[kPanelLanes];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lane_counts), counts[0]);
  _mm256_store_si256(reinterpret_cast<__m256i*>(lane_counts + 8), counts[1]);
  StoreRun(out, i, j, lane_counts, lanes);
}

// Runs run(std::integral_constant<StoreForm, form>) for the call's output form.
template <class Run>
void ForStoreForm(const GemmOutput& out, Run&& run) {
  switch (FormOf(out)) {
    case StoreForm::kBits:
      return run(std::integral_constant<StoreForm, StoreForm::kBits>{});
    case StoreForm::kFloatRows:
      return run(std::integral_constant<StoreForm, StoreForm::kFloatRows>{});
    case StoreForm::kFloatColumns:
      return run(std::integral_constant<StoreForm, StoreForm::kFloatColumns>{});
    case StoreForm::kOther:
      return run(std::integral_constant<StoreForm, StoreForm::kOther>{});
  }
}

}  // namespace
}  // namespace bnn2onnx
