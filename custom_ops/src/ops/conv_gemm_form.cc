#include "ops/conv_gemm_form.h"

#include <algorithm>
#include <limits>

namespace bnn2onnx {
namespace {

// Whether float output computes fewer idle lanes with filters as lanes (e.g. 49 pixels fill 4 panels, 64 lanes,
// while 512 filters fill 32 exactly), by a margin that pays for its scattered stores; lanes come in blocks of
// lane_block (a panel, or the nibble kernel's tile: 196 pixels leave 60 of 256 lanes idle there). Its scatter
// indices (16 rows of `pixels` floats) must fit int32.
bool FilterLanesFillBetter(int64_t pixels, int64_t filters, int64_t lane_block) {
  const auto lanes = [lane_block](int64_t n) { return (n + lane_block - 1) / lane_block * lane_block; };
  return pixels * kPanelLanes <= std::numeric_limits<int32_t>::max() &&
         lanes(filters) * pixels * 8 < lanes(pixels) * filters * 7;
}

// The panel of output pixels [p_begin, p_begin + 16) for the panel gather: each lane's top-left word offset in
// its image (from its group's first word), and per tap the lanes whose tap lies inside the image (none past the
// last pixel).
void PanelLanes(const ConvGeometry& g, const Window& w, int64_t p_begin, int64_t pixels, int64_t out_w,
                int64_t pixel_stride, int32_t* lane_offsets, uint16_t* tap_masks) {
  std::fill(tap_masks, tap_masks + w.Taps(), uint16_t{0});
  uint16_t inside = 0;  // lanes whose every tap lies inside: set in every mask at the end
  PixelCursor at(p_begin, out_w);
  for (int64_t l = 0; l < kPanelLanes; ++l, at.Next()) {
    lane_offsets[l] = 0;
    if (p_begin + l >= pixels) continue;
    const int64_t oh = at.oh, ow = at.ow;
    const int64_t top = oh * g.stride_h - g.pad_top, left = ow * g.stride_w - g.pad_left;
    lane_offsets[l] = static_cast<int32_t>((top * w.width + left) * pixel_stride);
    if (InsideInput(g, w, oh, ow)) {
      inside |= static_cast<uint16_t>(1u << l);
      continue;
    }
    const PaddedTaps padded = PaddedTapsAt(g, w, oh, ow);
    for (int64_t kh = 0; kh < w.kernel_h; ++kh) {
      for (int64_t kw = 0; kw < w.kernel_w; ++kw) {
        if (padded.Inside(kh, kw, w.kernel_h, w.kernel_w)) tap_masks[kh * w.kernel_w + kw] |= 1u << l;
      }
    }
  }
  for (int64_t t = 0; t < w.Taps(); ++t) tap_masks[t] |= inside;
}

// The implicit GEMM's tables (SizeTables) for a grid whose output is out_h x out_w.
void MakeGridTables(const ConvGeometry& g, const Window& w, const Grid& grid, int64_t out_h, int64_t out_w,
                    SizeTables& tables) {
  const int64_t columns = GridColumns(grid, out_h, out_w);
  const int64_t panels = (columns + kPanelLanes - 1) / kPanelLanes;
  const bool kinds = !tables.padding.kinds.empty();
  if (kinds) tables.grid_kinds.assign(static_cast<size_t>(panels * kPanelLanes), 0);
  tables.panel_valid.assign(static_cast<size_t>(panels), 0);
  tables.panel_first.assign(static_cast<size_t>(panels), 0);
  for (int64_t q = columns - 1; q >= 0; --q) {  // backwards: a panel's first valid lane is written last
    const int64_t oh = q / grid.width, ow = q % grid.width;
    if (ow >= out_w) continue;
    const int64_t panel = q / kPanelLanes;
    tables.panel_valid[panel] |= static_cast<uint16_t>(1u << (q % kPanelLanes));
    tables.panel_first[panel] = static_cast<int32_t>(oh * out_w + ow);
    if (kinds) tables.grid_kinds[q] = tables.padding.column_kinds[oh * out_w + ow];
  }
  for (const int32_t tap : TapOffsets(g, w, grid.width, 1)) {
    for (int64_t c = 0; c < g.words_per_group; ++c) {
      tables.grid_offsets.push_back(static_cast<int32_t>(c * grid.plane_words + tap));
    }
  }
}

}  // namespace

Grid GridFor(const ConvGeometry& g, int64_t height, int64_t width) {
  Grid grid;
  grid.width = width + g.pad_left + g.pad_right;
  grid.plane_words = (height + g.pad_top + g.pad_bottom) * grid.width + kPanelLanes;
  return grid;
}

// Implicit: the grid's extra columns cost the GEMM of every filter; gathering a panel of fields costs about what
// the GEMM of 10 filters against it does (measured at 64@56; kGatherFilters leans towards the gather).
GemmForm ChooseGemmForm(const ConvGeometry& g, bool implicit_allowed, bool packed_out, int64_t pixels,
                        int64_t grid_columns, int64_t per_group, const PaddingKinds& padding, int64_t lane_block) {
  constexpr int64_t kGatherFilters = 8;
  const auto panels = [](int64_t n) { return (n + kPanelLanes - 1) / kPanelLanes; };
  const bool pixel_lanes = !FilterLanesFillBetter(pixels, per_group, lane_block) && padding.FitColumns();
  const bool implicit = pixel_lanes && implicit_allowed && g.stride_h == 1 && g.stride_w == 1 &&
                        panels(grid_columns) * per_group < panels(pixels) * (per_group + kGatherFilters) &&
                        (!packed_out || g.group == 1);
  return {packed_out ? !implicit : !pixel_lanes, implicit};
}

SizeTables MakeSizeTables(const ConvGeometry& g, const PackedFilter& f, const Window& w, int64_t out_h, int64_t out_w,
                          int64_t pixel_stride, bool packed_out, bool implicit_allowed, int64_t lane_block) {
  SizeTables tables;
  tables.padding = MakePaddingKinds(g, f, w, out_h, out_w);
  const int64_t pixels = out_h * out_w, out_c = f.out_channels, taps = w.Taps();
  const Grid grid = GridFor(g, w.height, w.width);
  const GemmForm form = ChooseGemmForm(g, implicit_allowed, packed_out, pixels, GridColumns(grid, out_h, out_w),
                                       out_c / g.group, tables.padding, lane_block);
  tables.filter_lanes = form.filter_lanes, tables.implicit = form.implicit;
  if (!tables.filter_lanes && !tables.padding.kinds.empty()) tables.padding.UseColumns(out_c);
  if (tables.implicit) {
    MakeGridTables(g, w, grid, out_h, out_w, tables);
    return tables;
  }
  const int64_t panels = (pixels + kPanelLanes - 1) / kPanelLanes;
  tables.lane_offsets.resize(static_cast<size_t>(panels * kPanelLanes));
  tables.tap_masks.resize(static_cast<size_t>(panels * taps));
  for (int64_t panel = 0; panel < panels; ++panel) {
    PanelLanes(g, w, panel * kPanelLanes, pixels, out_w, pixel_stride, tables.lane_offsets.data() + panel * kPanelLanes,
               tables.tap_masks.data() + panel * taps);
  }
  return tables;
}

}  // namespace bnn2onnx
