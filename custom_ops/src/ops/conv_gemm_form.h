// How BinaryConv2D runs its binary GEMM for an input size (docs/kernels.md): which side the output pixels are
// (lanes of B, or rows of A), whether B is read in place from a word-planar padded grid (the implicit GEMM) or
// gathered, and the tables either form needs.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/conv_filter.h"
#include "ops/conv_geometry.h"
#include "ops/conv_padding.h"

namespace bnn2onnx {

// The zero-padded grid of a word-planar input: `width` columns, and each plane's words (the grid's rows and the
// lanes that the last panel of output pixels reads past them). Every term is at most 3 * kMaxDim (op_common.h), so
// its size cannot overflow.
struct Grid {
  int64_t width = 0, plane_words = 0;
};

Grid GridFor(const ConvGeometry& g, int64_t height, int64_t width);

// The implicit GEMM's columns: the grid's pixels up to the last output pixel (stride 1: output pixel (oh, ow) is
// the grid's pixel oh * width + ow, its receptive field's top-left word).
inline int64_t GridColumns(const Grid& grid, int64_t out_h, int64_t out_w) { return (out_h - 1) * grid.width + out_w; }

struct GemmForm {
  bool filter_lanes = false, implicit = false;
};

// The GEMM's form for an input size.
// - Filters as lanes (else pixels as lanes): when that fills lanes better (in blocks of lane_block lanes: the
//   kernel's), or when there are too many kinds of border pixel for the pixels-as-lanes form; for packed output
//   also unless the GEMM is implicit (pixels as lanes with gathered fields measured slower there) and with groups
//   (a task's filters must fill output words).
// - Implicit (B read in place from a word-planar padded input, no gather): pixels as lanes at stride 1, where a
//   panel of 16 consecutive pixels of the padded grid reads 16 consecutive words of a plane at every tap. The
//   grid's columns past the output width are computed for nothing: not when that costs more than gathering would.
//   Only when `implicit_allowed` (the AVX-512 kernels, or BNN2ONNX_IMPLICIT_GEMM=1: see BinaryConv2D).
GemmForm ChooseGemmForm(const ConvGeometry& g, bool implicit_allowed, bool packed_out, int64_t pixels,
                        int64_t grid_columns, int64_t per_group, const PaddingKinds& padding, int64_t lane_block);

// What a run needs to know of an input size besides the input itself: the padding kinds (in the form
// ChooseGemmForm picks), the GEMM's form, and either for each panel of output pixels its gather lanes, or the
// implicit GEMM's padded grid: its pixels' kinds of border, each panel's column map (GemmOutput) and where each
// word of a field starts (from its top-left pixel, in a group's planes).
struct SizeTables {
  PaddingKinds padding;
  bool filter_lanes = false, implicit = false;
  std::vector<int32_t> lane_offsets;  // [panels][kPanelLanes]: a lane's top-left word in its image
  std::vector<uint16_t> tap_masks;    // [panels][taps]: the lanes whose tap lies inside the image
  std::vector<uint8_t> grid_kinds;    // [grid panels][kPanelLanes], when there are border kinds
  std::vector<uint16_t> panel_valid;  // [grid panels]
  std::vector<int32_t> panel_first;   // [grid panels]
  std::vector<int32_t> grid_offsets;  // [field words]
};

SizeTables MakeSizeTables(const ConvGeometry& g, const PackedFilter& f, const Window& w, int64_t out_h, int64_t out_w,
                          int64_t pixel_stride, bool packed_out, bool implicit_allowed, int64_t lane_block);

}  // namespace bnn2onnx
