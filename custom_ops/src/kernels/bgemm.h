// The binary GEMM shared by BinaryConv2D and BinaryDense: the +-1 dot products of every row of A with every
// column of B, bits - 2 * popcount(a_i xor b_j), stored as int32 or turned into the op's float output.
//
// A is row-major (any stride); B is stored in panels of kPanelLanes columns, word-interleaved, so that a kernel
// loads one word of 16 columns as one vector and xors it with one broadcast word of A: every vector lane is an
// output, so there is no horizontal reduction and no padding of the reduction length. Kernels: portable, AVX2
// (nibble-lookup popcount), AVX-512 (vpopcntd, or nibble lookup without it), NEON (vcnt), chosen per kernel by
// SelectIsa.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/bit_convention.h"
#include "kernels/isa.h"

namespace bnn2onnx {

constexpr int64_t kPanelLanes = 16;

// Words of a panel-layout B with n columns of `words` words: panel q holds columns [16q, 16q + 16), word k of
// column j at [(j / 16) * words * 16 + k * 16 + j % 16]; lanes past n are zero.
constexpr int64_t PanelWords(int64_t n, int64_t words) {
  return (n + kPanelLanes - 1) / kPanelLanes * words * kPanelLanes;
}

// Where word 0 of column j lives in a panel-layout B (word k is kPanelLanes further per k).
constexpr int64_t PanelOffset(int64_t j, int64_t words) {
  return j / kPanelLanes * words * kPanelLanes + j % kPanelLanes;
}

// Writes the n rows (`stride` words apart, `words` words each) into `panels` (PanelWords(n, words) words).
void PackPanels(const Word* rows, int64_t stride, int64_t n, int64_t words, Word* panels);

// The GEMM's B side: word k of column j is base[(j / kPanelLanes) * panel_stride + j % kPanelLanes + offset(k)],
// offset(k) = k * kPanelLanes for a panel-layout matrix (word_offsets null, panel_stride = words * kPanelLanes), or
// word_offsets[k] for a convolution's implicit B: its word-planar padded image, read in place (panel_stride =
// kPanelLanes; word_offsets[k] where tap and word k start; column j is a pixel of the padded grid). The kernels
// are compiled for each form: a table lookup per word cost the portable kernel 2.7x, the AVX2 one 13%. (Every
// kernel reads both forms; BinaryConv2D picks the implicit one only for the AVX-512 kernels, where it pays.)
struct GemmB {
  const Word* base = nullptr;
  int64_t panel_stride = 0;
  const int32_t* word_offsets = nullptr;
};

// Calls run(std::true_type) when B has word offsets, else run(std::false_type): a kernel's entry point picks the
// form it was compiled for once per call.
template <class Run>
void ForBForm(const GemmB& b, Run&& run) {
  if (b.word_offsets) {
    run(std::true_type{});
  } else {
    run(std::false_type{});
  }
}

// A panel-layout B (PanelWords(n, words) words) from column j, a multiple of kPanelLanes.
inline GemmB PanelB(const Word* panels, int64_t j, int64_t words) {
  return {panels + PanelOffset(j, words), words * kPanelLanes, nullptr};
}

// Where and how a GEMM stores result (i, j) of dot = bits - 2 * popcount(a_i xor b_j) + offset, `bits` being the
// real (non-padding) bits of a row and `offset` zero padding's correction at border pixels, by kind of border
// pixel (kind 0: not a border pixel), when given:
// - pixels as columns: kind_offsets[i * kKinds + column_kinds[j]] (at most kKinds kinds; column_kinds readable
//   to the end of j's panel);
// - pixels as rows: kind_offsets[row_kinds[i] * kinds_stride + j].
// The result is stored either
// - as int32 at dots[i * stride + j], or
// - as one packed bit, set iff dot < below[j] or dot > above[j] (output_stage.h), bit j % 32 of
//   words[i * stride + j / 32] (column 0 is bit 0 of a word; the 16-bit halves holding columns are written whole,
//   zero past the last column; other bits are left as they are), or
// - as one packed bit per lane, set iff dot < below[i] or dot > above[i]: bit j % 16 of
//   lane_bits[(j / 16) * stride + i] (pixels as lanes: a panel's 16-bit mask per filter; the whole mask is
//   written, zero past the last column), or
// - as float act(float(dot) * multiplier[r] + bias[r]) (act: ReLU or none; a separate multiply and add, rounded as
//   the reference does, docs/ops.md), then * post_multiplier[r] + post_bias[r] and + residual[r * stride + c]
//   when given, then ReLU if final_relu, at floats[r * stride + c], where (r, c) = (i, j), or (j, i) when
//   `transposed` (then the per-channel vectors are per column of B). With a column map (an implicit
//   convolution's padded grid, float rows only), column j is stored only if it is an output pixel: bit j % 16 of
//   panel_valid[j / 16]; the valid lanes of a panel are consecutive output columns from panel_first[j / 16].
//   With sign_bits, the floats' signs too (bit set iff y < 0, bit_convention.h), per run of 16 columns from j (a
//   multiple of 16) as one 16-bit mask, bit l for column j + l (0 if not stored): at
//   sign_bits[(j / 16) * sign_stride + i], or when transposed at sign_bits[i * sign_stride + j / 16] (then the half
//   of pixel i's packed word holding channels j..j+15); written whole.
struct GemmOutput {
  static constexpr int64_t kKinds = 16;

  int32_t bits = 0;
  int64_t stride = 0;
  int32_t* dots = nullptr;
  Word* words = nullptr;
  uint16_t* lane_bits = nullptr;
  const int32_t* below = nullptr;
  const int32_t* above = nullptr;
  float* floats = nullptr;
  bool transposed = false;
  const float* multiplier = nullptr;
  const float* bias = nullptr;
  bool relu = false;
  const float* post_multiplier = nullptr;  // with post_bias, or neither
  const float* post_bias = nullptr;
  const float* residual = nullptr;
  bool final_relu = false;
  const uint8_t* column_kinds = nullptr;
  const int32_t* row_kinds = nullptr;
  const int32_t* kind_offsets = nullptr;
  int64_t kinds_stride = 0;
  const uint16_t* panel_valid = nullptr;  // with panel_first: the column map
  const int32_t* panel_first = nullptr;
  uint16_t* sign_bits = nullptr;
  int64_t sign_stride = 0;
  // The stores themselves are in gemm_store.h, compiled into each kernel file for its own instruction set.
};

// Stores every result (i, j), i < m, j < n, of A against B; nothing else is written (not the lanes of B's last
// panel past n). Word k of row i of A is a[i * a_stride + k * a_step]: a_step is 1 for row-major
// rows, kPanelLanes for rows taken from one panel of a panel-layout matrix.
using BinaryGemmFn = void (*)(const Word* a, int64_t a_stride, int64_t a_step, int64_t m, const GemmB& b,
                              int64_t n, int64_t words, const GemmOutput& out);

void BinaryGemmPortable(const Word* a, int64_t a_stride, int64_t a_step, int64_t m, const GemmB& b, int64_t n,
                        int64_t words, const GemmOutput& out);
#if defined(BNN2ONNX_HAVE_X86_KERNELS)
void BinaryGemmAvx2(const Word* a, int64_t a_stride, int64_t a_step, int64_t m, const GemmB& b, int64_t n,
                    int64_t words, const GemmOutput& out);
void BinaryGemmAvx512(const Word* a, int64_t a_stride, int64_t a_step, int64_t m, const GemmB& b, int64_t n,
                      int64_t words, const GemmOutput& out);
void BinaryGemmAvx512Bw(const Word* a, int64_t a_stride, int64_t a_step, int64_t m, const GemmB& b, int64_t n,
                        int64_t words, const GemmOutput& out);
#endif
#if defined(BNN2ONNX_HAVE_NEON_KERNELS)
void BinaryGemmNeon(const Word* a, int64_t a_stride, int64_t a_step, int64_t m, const GemmB& b, int64_t n,
                    int64_t words, const GemmOutput& out);
#endif

// The nibble form of GEMM operands, which the AVX2 kernel counts by table lookup (bgemm_tables_avx2.cc). A row or
// column of `words` words becomes NibblePositions(words) positions; position 8k + 4h + q stands for nibble 2q + h
// of word k (bits 8q + 4h to 8q + 4h + 3):
// - A's rows: one byte per position, 16 times the row's nibble there (an offset into the lookup tables), rows
//   NibblePositions(words) bytes apart;
// - B's columns in nibble panels of kNibbleColumns: panel q holds columns [32q, 32q + 32), per position 32 bytes
//   (column 32q + c's nibble at byte c), NibblePanelBytes(words) bytes per panel; every column of a panel is
//   readable (zeros past the last).
constexpr int64_t kNibbleColumns = 32;
constexpr int64_t NibblePositions(int64_t words) { return 8 * words; }
constexpr int64_t NibblePanelBytes(int64_t words) { return NibblePositions(words) * kNibbleColumns; }

// The kernel that takes the nibble form (the AVX2 one, bgemm_tables_avx2.cc) and the conversions into it.
struct NibbleKernel {
  // The m rows of A (word k of row i at a[i * a_stride + k * a_step]) in the nibble form, at `rows`.
  void (*rows)(const Word* a, int64_t a_stride, int64_t a_step, int64_t m, int64_t words, uint8_t* rows);
  // The n columns of a panel-layout matrix (PackPanels) as nibble panels (NibblePanelBytes(words) bytes per 32
  // columns; the last panel's columns past the matrix's panels zero).
  void (*panels)(const Word* panels, int64_t n, int64_t words, uint8_t* nibble_panels);
  // One panel of receptive fields (GatherPanelFn's arguments; pixel_stride: the image's words per pixel) straight
  // into the nibble form: as half `half` of a nibble panel (with `last`, the last panel of fields: a half 0 then
  // has half 1 zeroed), or as the nibble rows of its first `rows` lanes.
  void (*gather_half)(const Word* image, const int32_t* lane_offsets, const int32_t* tap_offsets,
                      const uint16_t* tap_masks, int64_t taps, int64_t tap_words, int64_t pixel_stride,
                      uint8_t* nibble_panel, int64_t half, bool last);
  void (*gather_rows)(const Word* image, const int32_t* lane_offsets, const int32_t* tap_offsets,
                      const uint16_t* tap_masks, int64_t taps, int64_t tap_words, int64_t pixel_stride,
                      uint8_t* nibble_rows, int64_t rows);
  // BinaryGemmFn's results from A's m rows and B's n columns in the nibble form, of `positions` positions each.
  void (*gemm)(const uint8_t* rows, int64_t m, const uint8_t* panels, int64_t n, int64_t positions,
               const GemmOutput& out);
};

// The instruction set's nibble kernel, or null where its GEMM takes words (BinaryGemmFor).
const NibbleKernel* NibbleKernelFor(Isa isa);
#if defined(BNN2ONNX_HAVE_X86_KERNELS)
extern const NibbleKernel kNibbleKernelAvx2;
#endif

// Builds one panel of receptive fields straight from an image (BinaryConv2D's float output): word
// t * tap_words + c of lane l is image[lane_offsets[l] + tap_offsets[t] + c] if bit l of tap_masks[t] is set (the
// tap lies inside the image), else 0 (+1). Offsets are in words; every such index fits int32.
using GatherPanelFn = void (*)(const Word* image, const int32_t* lane_offsets, const int32_t* tap_offsets,
                               const uint16_t* tap_masks, int64_t taps, int64_t tap_words, Word* panel);

void GatherPanelPortable(const Word* image, const int32_t* lane_offsets, const int32_t* tap_offsets,
                         const uint16_t* tap_masks, int64_t taps, int64_t tap_words, Word* panel);
#if defined(BNN2ONNX_HAVE_X86_KERNELS)
void GatherPanelAvx512(const Word* image, const int32_t* lane_offsets, const int32_t* tap_offsets,
                       const uint16_t* tap_masks, int64_t taps, int64_t tap_words, Word* panel);
#endif

BinaryGemmFn BinaryGemmFor(Isa isa);
// The columns that fill a kernel's tiles side by side: GEMM calls whose n is a multiple of it compute no idle
// lanes but the last call's. Three panels (the AVX-512 tile's width), or with a nibble kernel (NibbleKernelFor)
// two nibble panels: its tile's.
int64_t ColumnBlockFor(Isa isa);
GatherPanelFn GatherPanelFor(Isa isa);  // AVX-512 gathers; the portable one otherwise (the nibble kernel has its own)

}  // namespace bnn2onnx
