// The AVX-512 binary GEMM, generic over how a tile counts the bits of a vector of xored words (Count):
// bgemm_avx512.cc counts with vpopcntd (AVX512_VPOPCNTDQ), bgemm_avx512bw.cc by nibble lookup (AVX512BW, for the
// CPUs without vpopcntd: Skylake-SP, Cascade Lake). Each includes this file and is built for its own ISA; all of
// it has internal linkage, so that no copy built for one ISA can be the one the linker keeps for the other. No
// std:: function templates here (see bgemm_avx2.cc).
//
// Register tiles of up to 4 rows of A x 3 panels of B (12 accumulators of 16 counts): per word of the reduction,
// 3 panel loads and 4 broadcasts feed 12 xors and counts. Count provides
//   Add(partial, x): partial plus the bit counts of x's 16 words, in Count's partial form;
//   kChunkWords: 0 if the partial form is the 16 32-bit counts themselves, else how many words it holds before
//     Widen(partial) must turn it into them (a byte counter overflows).
#pragma once

#include <immintrin.h>

#include "kernels/gemm_store.h"

namespace bnn2onnx {
namespace {  // internal linkage: each including file keeps its own copy, built for its ISA

// 12 accumulators: larger tiles (8x3, 6x4) measured slower, GCC spilling accumulators to the stack; 4x4 (fewer
// loads per xor/popcount/add) measured the same.
constexpr int kMaxRows = 4, kMaxPanels = 3;

// Each lane's dot product of two +-1 vectors of `bits` bits from the count of bits where they differ.
inline __m512i Dots(__m512i bits, __m512i popcounts) {
  return _mm512_sub_epi32(bits, _mm512_add_epi32(popcounts, popcounts));
}

// Stores 16 results of row i from columns j.. (the lanes set in `lanes`) from their popcounts (StoreRun, gemm_store.h),
// except float rows (not transposed), which StoreFloatRows stores a tile at a time.
inline void Store16(const GemmOutput& out, int64_t i, int64_t j, __m512i popcounts, __mmask16 lanes) {
  __m512i dot = Dots(_mm512_set1_epi32(out.bits), popcounts);
  if (out.row_kinds && out.row_kinds[i] != 0) {
    const int32_t* offsets = out.kind_offsets + out.row_kinds[i] * out.kinds_stride + j;
    dot = _mm512_add_epi32(dot, _mm512_maskz_loadu_epi32(lanes, offsets));
  }
  // Zero-masking forms of the intrinsics below: the plain ones trip GCC 12's -Wmaybe-uninitialized in its headers.
  if (out.column_kinds) {
    const __m128i kind_bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(out.column_kinds + j));
    const __m512i offsets = _mm512_loadu_si512(out.kind_offsets + i * GemmOutput::kKinds);
    const __m512i kinds = _mm512_maskz_cvtepu8_epi32(lanes, kind_bytes);
    dot = _mm512_add_epi32(dot, _mm512_maskz_permutexvar_epi32(lanes, kinds, offsets));
  }
  if (out.lane_bits) {
    const __m512i below = _mm512_set1_epi32(out.below[i]), above = _mm512_set1_epi32(out.above[i]);
    out.lane_bits[j / kPanelLanes * out.stride + i] =
        _mm512_mask_cmplt_epi32_mask(lanes, dot, below) | _mm512_mask_cmpgt_epi32_mask(lanes, dot, above);
    return;
  }
  if (out.words) {
    // 16 columns from j (a multiple of 16) are one half of a word: x86 is little-endian.
    const __mmask16 bits = _mm512_mask_cmplt_epi32_mask(lanes, dot, _mm512_maskz_loadu_epi32(lanes, out.below + j)) |
                           _mm512_mask_cmpgt_epi32_mask(lanes, dot, _mm512_maskz_loadu_epi32(lanes, out.above + j));
    reinterpret_cast<uint16_t*>(out.words + i * out.stride + j / kWordBits)[j / kPanelLanes % 2] = bits;
    return;
  }
  if (out.floats == nullptr) {
    _mm512_mask_storeu_epi32(out.dots + i * out.stride + j, lanes, dot);
    return;
  }
  // Float results reaching here are transposed (StoreFloatRows stores rows): the per-channel vectors are per lane.
  const __m512 multiplier = _mm512_maskz_loadu_ps(lanes, out.multiplier + j);
  __m512 y = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_cvtepi32_ps(lanes, dot), multiplier),
                           _mm512_maskz_loadu_ps(lanes, out.bias + j));
  // max(0, y) is 0 > y ? 0 : y: NaN and -0.0 pass through, as `y < 0 ? 0 : y` does.
  if (out.relu) y = _mm512_maskz_max_ps(lanes, _mm512_setzero_ps(), y);
  if (out.post_multiplier) {
    y = _mm512_add_ps(_mm512_mul_ps(y, _mm512_maskz_loadu_ps(lanes, out.post_multiplier + j)),
                      _mm512_maskz_loadu_ps(lanes, out.post_bias + j));
  }
  // Lane l is column j + l: a row of its own, `stride` floats apart (16 * stride fits int32, see the caller).
  const __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                          _mm512_set1_epi32(static_cast<int>(out.stride)));
  const int64_t at = j * out.stride + i;
  if (out.residual) {
    y = _mm512_add_ps(y, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes, rows, out.residual + at, 4));
  }
  if (out.final_relu) y = _mm512_maskz_max_ps(lanes, _mm512_setzero_ps(), y);
  _mm512_mask_i32scatter_ps(out.floats + at, lanes, rows, y, 4);
  if (out.sign_bits) SignsOf(out, i, j) = _mm512_mask_cmp_ps_mask(lanes, y, _mm512_setzero_ps(), _CMP_LT_OQ);
}

// The R x P results of a tile stored as float rows (not transposed; the pixels-as-lanes convolution), with
// StoreRun's arithmetic. Each optional step runs over the whole tile behind one test, its loops
// unrolled so that the tile stays in registers: tested per vector instead, the tests and the values they needed
// (spilled from registers) made this store cost two thirds of the GEMM of a 64-channel 3x3 layer. out's fields
// are read before any store (a store through out.floats may alias them). kMapped: out has a column map (a
// compile-time choice: testing it per store cost 3% of a 128-channel layer).
template <int R, int P, bool kMapped>
void StoreFloatRows(const GemmOutput& out, int64_t i, int64_t j, const __m512i (&acc)[R][P], __mmask16 last_lanes) {
  const int64_t stride = out.stride;
  // Each panel's lanes to store and output column of its first lane (the column map, or j's own columns);
  // whether they are stored in place (all lanes, or j's own columns) or, for a panel across a row end of the
  // padded grid, packed together as consecutive outputs; its pixels' kinds of border (most panels have none).
  __mmask16 valid[P];
  int64_t first[P];
  bool in_place[P];
  __m512i kinds[P];
  bool border[P];
  const uint8_t* const column_kinds = out.column_kinds;
  const int32_t* const kind_offsets = column_kinds ? out.kind_offsets : nullptr;
  #pragma GCC unroll 3
  for (int p = 0; p < P; ++p) {
    const __mmask16 lanes = p == P - 1 ? last_lanes : __mmask16{0xffff};
    const int64_t panel = j / kPanelLanes + p;
    valid[p] = kMapped ? static_cast<__mmask16>(out.panel_valid[panel] & lanes) : lanes;
    first[p] = kMapped ? out.panel_first[panel] : j + p * kPanelLanes;
    in_place[p] = !kMapped || valid[p] == 0xffff || valid[p] == lanes;
    kinds[p] = kind_offsets ? _mm512_maskz_cvtepu8_epi32(lanes, _mm_loadu_si128(reinterpret_cast<const __m128i*>(
                                                                   column_kinds + j + p * kPanelLanes)))
                            : _mm512_setzero_si512();
    border[p] = _mm512_test_epi32_mask(kinds[p], kinds[p]) != 0;
  }
  // The dots and the affine map. Lanes past last_lanes are computed and never stored. (Zero-masking forms with
  // every lane: the plain intrinsics trip GCC 12's -Wmaybe-uninitialized in its headers.)
  constexpr __mmask16 kAll = 0xffff;
  __m512 y[R][P];
  const __m512i bits = _mm512_set1_epi32(out.bits);
  const int32_t* const row_kinds = out.row_kinds;
  #pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    const int64_t row = i + r;
    // The residual this row's next column block adds (a pass over the task's other rows from now): a task reads
    // tens of rows at once, more streams than the hardware prefetcher follows (QuickNet 1.5% faster at 1 thread).
    for (int p = 0; out.residual && p < kMaxPanels; ++p) {
      const int64_t ahead = row * stride + first[0] + (kMaxPanels + p) * kPanelLanes;
      _mm_prefetch(reinterpret_cast<const char*>(out.residual + ahead), _MM_HINT_T0);
    }
    const __m512 multiplier = _mm512_set1_ps(out.multiplier[row]), bias = _mm512_set1_ps(out.bias[row]);
    const int32_t* const row_offsets =
        row_kinds && row_kinds[row] != 0 ? out.kind_offsets + row_kinds[row] * out.kinds_stride + j : nullptr;
    const __m512i offsets = kind_offsets ? _mm512_loadu_si512(kind_offsets + row * GemmOutput::kKinds)
                                         : _mm512_setzero_si512();
    #pragma GCC unroll 3
    for (int p = 0; p < P; ++p) {
      __m512i dot = Dots(bits, acc[r][p]);
      if (row_offsets) {
        const __mmask16 lanes = p == P - 1 ? last_lanes : kAll;  // no read past the offsets' last column
        dot = _mm512_add_epi32(dot, _mm512_maskz_loadu_epi32(lanes, row_offsets + p * kPanelLanes));
      }
      if (border[p]) dot = _mm512_add_epi32(dot, _mm512_maskz_permutexvar_epi32(kAll, kinds[p], offsets));
      y[r][p] = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_cvtepi32_ps(kAll, dot), multiplier), bias);
    }
  }
  // max(0, y) is 0 > y ? 0 : y: NaN and -0.0 pass through, as `y < 0 ? 0 : y` does.
  const auto relu = [&y] {
    #pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      #pragma GCC unroll 3
      for (int p = 0; p < P; ++p) y[r][p] = _mm512_maskz_max_ps(kAll, _mm512_setzero_ps(), y[r][p]);
    }
  };
  if (out.relu) relu();
  if (out.post_multiplier) {
    #pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m512 post_multiplier = _mm512_set1_ps(out.post_multiplier[i + r]);
      const __m512 post_bias = _mm512_set1_ps(out.post_bias[i + r]);
      #pragma GCC unroll 3
      for (int p = 0; p < P; ++p) y[r][p] = _mm512_add_ps(_mm512_mul_ps(y[r][p], post_multiplier), post_bias);
    }
  }
  if (const float* const residual = out.residual) {
    #pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      #pragma GCC unroll 3
      for (int p = 0; p < P; ++p) {
        const float* const at = residual + (i + r) * stride + first[p];
        y[r][p] = _mm512_add_ps(y[r][p], in_place[p] ? _mm512_maskz_loadu_ps(valid[p], at)
                                                     : _mm512_maskz_expandloadu_ps(valid[p], at));
      }
    }
  }
  if (out.final_relu) relu();
  if (uint16_t* const sign_bits = out.sign_bits) {
    #pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      #pragma GCC unroll 3
      for (int p = 0; p < P; ++p) {
        sign_bits[(j / kPanelLanes + p) * out.sign_stride + i + r] =
            _mm512_mask_cmp_ps_mask(valid[p], y[r][p], _mm512_setzero_ps(), _CMP_LT_OQ);
      }
    }
  }
  float* const floats = out.floats;
  #pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    #pragma GCC unroll 3
    for (int p = 0; p < P; ++p) {
      float* const at = floats + (i + r) * stride + first[p];
      if (in_place[p]) {
        _mm512_mask_storeu_ps(at, valid[p], y[r][p]);
      } else {  // two masked stores, one per row's part, with the lanes in place, measured 4-15% slower
        const __mmask16 count = static_cast<__mmask16>((1u << __builtin_popcount(valid[p])) - 1);
        _mm512_mask_storeu_ps(at, count, _mm512_maskz_compress_ps(valid[p], y[r][p]));
      }
    }
  }
}

// 4 x 4 transposes within each 128-bit block: 4 vectors of 16 columns (a row each) <-> 4 vectors of which the
// m-th holds column 4k + m's 4 rows in block k. Its own inverse. (Zero-masking forms with every lane, as above.)
inline void TransposeQuads(__m512 (&v)[4]) {
  constexpr __mmask16 kAll = 0xffff;
  constexpr __mmask8 kAllPairs = 0xff;
  const __m512d t0 = _mm512_castps_pd(_mm512_maskz_unpacklo_ps(kAll, v[0], v[1]));
  const __m512d t1 = _mm512_castps_pd(_mm512_maskz_unpackhi_ps(kAll, v[0], v[1]));
  const __m512d t2 = _mm512_castps_pd(_mm512_maskz_unpacklo_ps(kAll, v[2], v[3]));
  const __m512d t3 = _mm512_castps_pd(_mm512_maskz_unpackhi_ps(kAll, v[2], v[3]));
  v[0] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(kAllPairs, t0, t2));
  v[1] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(kAllPairs, t0, t2));
  v[2] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(kAllPairs, t1, t3));
  v[3] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(kAllPairs, t1, t3));
}

// The 4 x P results of a tile stored as transposed floats (filters as lanes: rows i..i + 3 are consecutive pixels,
// so each filter's four are 4 consecutive floats of its output row), with StoreRun's arithmetic: the
// residual is read and the output written 4 floats at a time (after a transpose, block k of a vector by a masked
// load or store from 4k floats before the block's address, which lies within the output: filter 4k + m's row
// starts at least 4k floats in), not gathered and scattered a float at a time (that cost 12% of a 7x7
// 512-channel layer).
template <int P>
void StoreFloatQuads(const GemmOutput& out, int64_t i, int64_t j, const __m512i (&acc)[4][P], __mmask16 last_lanes) {
  constexpr __mmask16 kAll = 0xffff;
  const GemmOutput o = out;  // a copy whose fields no store can alias, read once
  const __m512i bits = _mm512_set1_epi32(o.bits);
  for (int p = 0; p < P; ++p) {
    const int64_t column = j + p * kPanelLanes;
    const __mmask16 lanes = p == P - 1 ? last_lanes : kAll;
    const __m512 multiplier = _mm512_maskz_loadu_ps(lanes, o.multiplier + column);
    const __m512 bias = _mm512_maskz_loadu_ps(lanes, o.bias + column);
    __m512 y[4];
    for (int q = 0; q < 4; ++q) {
      __m512i dot = Dots(bits, acc[q][p]);
      if (o.row_kinds && o.row_kinds[i + q] != 0) {
        dot = _mm512_add_epi32(
            dot, _mm512_maskz_loadu_epi32(lanes, o.kind_offsets + o.row_kinds[i + q] * o.kinds_stride + column));
      }
      y[q] = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_cvtepi32_ps(kAll, dot), multiplier), bias);
      if (o.relu) y[q] = _mm512_maskz_max_ps(kAll, _mm512_setzero_ps(), y[q]);
    }
    if (o.post_multiplier) {
      const __m512 post_multiplier = _mm512_maskz_loadu_ps(lanes, o.post_multiplier + column);
      const __m512 post_bias = _mm512_maskz_loadu_ps(lanes, o.post_bias + column);
      for (int q = 0; q < 4; ++q) y[q] = _mm512_add_ps(_mm512_mul_ps(y[q], post_multiplier), post_bias);
    }
    TransposeQuads(y);  // y[m], block k: filter column + 4k + m, pixels i..i + 3
    // Filter column + 4k + m is stored if lane 4k + m is: block k of y[m].
    const auto block_lanes = [lanes](int m, int k) -> __mmask16 {
      return (lanes >> (4 * k + m) & 1) ? static_cast<__mmask16>(0xfu << (4 * k)) : __mmask16{0};
    };
    if (o.residual) {
      for (int m = 0; m < 4; ++m) {
        __m512 residual = _mm512_setzero_ps();
        for (int k = 0; k < 4; ++k) {
          residual = _mm512_mask_loadu_ps(residual, block_lanes(m, k),
                                          o.residual + (column + 4 * k + m) * o.stride + i - 4 * k);
        }
        y[m] = _mm512_add_ps(y[m], residual);
      }
    }
    if (o.final_relu) {
      for (int m = 0; m < 4; ++m) y[m] = _mm512_maskz_max_ps(kAll, _mm512_setzero_ps(), y[m]);
    }
    if (o.sign_bits) {
      __m512 rows[4] = {y[0], y[1], y[2], y[3]};
      TransposeQuads(rows);
      for (int q = 0; q < 4; ++q) {
        SignsOf(o, i + q, column) = _mm512_mask_cmp_ps_mask(lanes, rows[q], _mm512_setzero_ps(), _CMP_LT_OQ);
      }
    }
    for (int m = 0; m < 4; ++m) {
      for (int k = 0; k < 4; ++k) {
        _mm512_mask_storeu_ps(o.floats + (column + 4 * k + m) * o.stride + i - 4 * k, block_lanes(m, k), y[m]);
      }
    }
  }
}

// Rows [i, i + R) of A (a points at row i) against panels [0, P) of B (b.base points at the panel of column j);
// lanes of the last panel past `last_lanes` are not stored. kWordOffsets: B's word offsets from b.word_offsets,
// else the panel layout's.
template <class Count, int R, int P, bool kWordOffsets>
void Tile(const Word* a, int64_t a_stride, int64_t a_step, const GemmB& b, int64_t words, const GemmOutput& out,
          int64_t i, int64_t j, __mmask16 last_lanes) {
  const Word* const base = b.base;
  const int64_t panel_stride = b.panel_stride;
  const int32_t* const word_offsets = b.word_offsets;
  __m512i acc[R][P];
  for (int r = 0; r < R; ++r) {
    for (int p = 0; p < P; ++p) acc[r][p] = _mm512_setzero_si512();
  }
  // Adds the counts of words [k_begin, k_end) to counts (Count's partial form).
  const auto count_words = [&](int64_t k_begin, int64_t k_end, __m512i(&counts)[R][P]) {
    for (int64_t k = k_begin; k < k_end; ++k) {
      __m512i vb[P];
      const Word* const words_k = base + (kWordOffsets ? word_offsets[k] : k * kPanelLanes);
      for (int p = 0; p < P; ++p) vb[p] = _mm512_loadu_si512(words_k + p * panel_stride);
      for (int r = 0; r < R; ++r) {
        const __m512i va = _mm512_set1_epi32(static_cast<int>(a[r * a_stride + k * a_step]));
        for (int p = 0; p < P; ++p) counts[r][p] = Count::Add(counts[r][p], _mm512_xor_si512(va, vb[p]));
      }
    }
  };
  if constexpr (Count::kChunkWords == 0) {
    count_words(0, words, acc);
  } else {
    for (int64_t chunk = 0; chunk < words; chunk += Count::kChunkWords) {
      __m512i partial[R][P];
      for (int r = 0; r < R; ++r) {
        for (int p = 0; p < P; ++p) partial[r][p] = _mm512_setzero_si512();
      }
      count_words(chunk, words - chunk < Count::kChunkWords ? words : chunk + Count::kChunkWords, partial);
      for (int r = 0; r < R; ++r) {
        for (int p = 0; p < P; ++p) acc[r][p] = _mm512_add_epi32(acc[r][p], Count::Widen(partial[r][p]));
      }
    }
  }
  if (out.floats && !out.transposed) {
    if (out.panel_valid) {
      StoreFloatRows<R, P, true>(out, i, j, acc, last_lanes);
    } else {
      StoreFloatRows<R, P, false>(out, i, j, acc, last_lanes);
    }
    return;
  }
  if constexpr (R == 4) {
    if (out.floats) {
      StoreFloatQuads<P>(out, i, j, acc, last_lanes);
      return;
    }
  }
  // A copy whose fields no store can alias (see StoreFloatRows), so they are read once.
  const GemmOutput local = out;
  for (int r = 0; r < R; ++r) {
    for (int p = 0; p < P; ++p) {
      Store16(local, i + r, j + p * kPanelLanes, acc[r][p], p == P - 1 ? last_lanes : __mmask16{0xffff});
    }
  }
}

// Rows [i, i + R) of A against `columns` (at most kMaxPanels * kPanelLanes) columns from j.
template <class Count, int R, bool kWordOffsets>
void Block(const Word* a, int64_t a_stride, int64_t a_step, const GemmB& b, int64_t columns, int64_t words,
           const GemmOutput& out, int64_t i, int64_t j) {
  const int64_t panels = (columns + kPanelLanes - 1) / kPanelLanes;
  const int64_t tail = columns - (panels - 1) * kPanelLanes;
  const __mmask16 last_lanes = static_cast<__mmask16>((1u << tail) - 1);
  if (panels == 3) Tile<Count, R, 3, kWordOffsets>(a, a_stride, a_step, b, words, out, i, j, last_lanes);
  if (panels == 2) Tile<Count, R, 2, kWordOffsets>(a, a_stride, a_step, b, words, out, i, j, last_lanes);
  if (panels == 1) Tile<Count, R, 1, kWordOffsets>(a, a_stride, a_step, b, words, out, i, j, last_lanes);
}

using BlockFn = void (*)(const Word*, int64_t, int64_t, const GemmB&, int64_t, int64_t, const GemmOutput&,
                         int64_t, int64_t);

// Blocks<Count>::kFor[w][r - 1] handles r rows, with B's word offsets from a table (w = 1) or the panel layout's.
template <class Count>
struct Blocks {
  static constexpr BlockFn kFor[2][kMaxRows] = {
      {&Block<Count, 1, false>, &Block<Count, 2, false>, &Block<Count, 3, false>, &Block<Count, 4, false>},
      {&Block<Count, 1, true>, &Block<Count, 2, true>, &Block<Count, 3, true>, &Block<Count, 4, true>}};
};

// The GEMM (BinaryGemmFn) with tiles counting bits by Count.
template <class Count>
void Gemm(const Word* a, int64_t a_stride, int64_t a_step, int64_t m, const GemmB& b_side, int64_t n, int64_t words,
          const GemmOutput& out) {
  const BlockFn* blocks = Blocks<Count>::kFor[b_side.word_offsets != nullptr];
  // Column chunks outside, rows inside: a chunk of B (3 panels) stays in L1 while every row block passes over it.
  for (int64_t j = 0; j < n; j += kMaxPanels * kPanelLanes) {
    const int64_t columns = n - j < kMaxPanels * kPanelLanes ? n - j : kMaxPanels * kPanelLanes;
    for (int64_t i = 0; i < m; i += kMaxRows) {
      const int64_t rows = m - i < kMaxRows ? m - i : kMaxRows;
      const GemmB b{b_side.base + j / kPanelLanes * b_side.panel_stride, b_side.panel_stride, b_side.word_offsets};
      blocks[rows - 1](a + i * a_stride, a_stride, a_step, b, columns, words, out, i, j);
    }
  }
}

}  // namespace
}  // namespace bnn2onnx
