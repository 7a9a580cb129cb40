// BinaryConv2D (docs/ops.md): a 2-D convolution of +-1 activations with +-1 weights by xor/popcount.
//
// Each output pixel's receptive field (per group) is one packed field of KH*KW taps (padded taps as +1, i.e. zero
// words), and the binary GEMM takes its +-1 dot product with every filter of the group, in the form that
// conv_gemm_form.h chooses:
// - Pixels as lanes: filters are the GEMM's row side and the fields its panels, so each filter's results are 16
//   pixels at once (float output, NCHW: stored 16 at a time; packed output: a 16-bit mask per filter, turned into
//   the pixels' words). At stride 1 the GEMM is implicit: the input is laid out word-planar on a zero-padded grid,
//   so the fields of 16 consecutive grid pixels are 16 consecutive words at every tap, read in place; otherwise
//   the fields are gathered into panels first.
// - Filters as lanes (when the pixels fill panels worse than the filters do, e.g. 7x7; packed output unless
//   implicit): gathered fields are the rows and the filters the panels.
// One padding is then already exact; zero padding adds, at border pixels, an offset that takes away what a +1
// input contributed at the padded taps (per filter and kind of border pixel, conv_padding.h), and -1 padding twice
// that.
#include <algorithm>
#include <array>
#include <cstdlib>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>

#include "kernels/bitpacking.h"
#include "ops/binary_layer.h"
#include "ops/conv_filter.h"
#include "ops/conv_gemm_form.h"
#include "ops/conv_geometry.h"
#include "ops/ops.h"

namespace bnn2onnx {
namespace {

// The implicit GEMM (conv_gemm_form.h) is taken with the AVX-512 kernels only: the AVX2 and portable kernels lose
// more to B's word offsets and to panels across a row end than the gather costs (64@56: 1.4x and 2.4x slower), so
// they take it only with BNN2ONNX_IMPLICIT_GEMM=1, which lets the tests run its layout on CPUs without AVX-512.
bool ImplicitGemmOnEveryIsa() {
  const char* setting = std::getenv("BNN2ONNX_IMPLICIT_GEMM");
  return setting != nullptr && std::string(setting) == "1";
}

// Work split of the GEMM. Pixels as lanes: tasks of up to kFilterBlock filters (a multiple of a word's 32, so a
// task writes whole output words) x the kernel's column block of pixels (ColumnBlockFor: whole panels, at most
// kMaxPixelBlock). Filters as lanes, packed output: tasks of kPixelRows pixels
// (two of its 4-row tiles, within one panel of fields) x up to kFilterChunk filters (a multiple of the tile's 48
// and of a word's 32, so a task writes whole output words). Filters as lanes, float output: tasks of up to
// kScatterPixels pixels x kScatterFilters filters (two panels). Either way a small late layer (7x7 x 512) still
// splits into enough tasks to balance two threads.
constexpr int64_t kFilterBlock = 64, kMaxPixelBlock = 4 * kPanelLanes, kPixelRows = 8, kFilterChunk = 192;
constexpr int64_t kScatterPixels = 256, kScatterFilters = 32;
// The float input is packed in tasks of a band of whole input rows, at least kPackPixels pixels (long sequential
// reads of each channel), x one word of a group's channels.
constexpr int64_t kPackPixels = 256, kPackChannels = kWordBits;

// ThreadScratch buffers: the receptive fields of an image, in words and in the nibble form; a packed-output task's
// dots.
struct FieldsScratch;
struct NibbleFieldsScratch;
struct DotsScratch;

// Gathers panel `panel` of `panels` of receptive fields into a group's nibble fields (NibbleKernel): as the rows of
// its first `rows` pixels (the filters-as-lanes GEMM's A), or with rows 0 as half of a nibble panel (the
// pixels-as-lanes GEMM's B).
void GatherNibbles(const NibbleKernel& nibbles, const Word* image, const int32_t* lane_offsets,
                   const int32_t* tap_offsets, const uint16_t* tap_masks, int64_t taps, int64_t tap_words,
                   int64_t pixel_stride, int64_t panel, int64_t panels, int64_t rows, uint8_t* group_nibbles) {
  const int64_t field_words = taps * tap_words;
  if (rows > 0) {
    nibbles.gather_rows(image, lane_offsets, tap_offsets, tap_masks, taps, tap_words, pixel_stride,
                        group_nibbles + panel * kPanelLanes * NibblePositions(field_words), rows);
    return;
  }
  nibbles.gather_half(image, lane_offsets, tap_offsets, tap_masks, taps, tap_words, pixel_stride,
                      group_nibbles + panel / 2 * NibblePanelBytes(field_words), panel % 2, panel == panels - 1);
}

class BinaryConv2D {
 public:
  static constexpr const char* kName = "BinaryConv2D";
  static constexpr auto kInputTypes = kBinaryLayerInputTypes;
  static constexpr size_t kRequiredInputs = kBinaryLayerRequiredInputs;
  // Output 0 by mode; output 1 (optional, float output only) the packed signs of output 0.
  static constexpr std::array<ONNXTensorElementDataType, 2> kOutputTypes = {ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED,
                                                                           ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32};
  static constexpr size_t kRequiredOutputs = 1;

  static void InferShape(const ShapeInference& s) {
    const bool packed_out = s.Int("packed_output").value_or(0) == 1;
    const bool packed_in = s.InputType(0) == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
    Dims x = s.InputDims(0).value_or(Dims(4)), w = s.InputDims(1).value_or(Dims(4));
    if (x.size() != 4) x = Dims(4);
    if (w.size() != 4) w = Dims(4);
    const Dim out_h = WindowOutputDim(s, x[packed_in ? 1 : 2], 0, w[1]);
    const Dim out_w = WindowOutputDim(s, x[packed_in ? 2 : 3], 1, w[2]);
    if (packed_out) {
      s.SetOutput(ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, {x[0], out_h, out_w, WordsDim(w[0])});
    } else {
      s.SetOutput(ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, {x[0], w[0], out_h, out_w});
    }
  }

  explicit BinaryConv2D(const OrtKernelInfo* info)
      : geometry_(ReadGeometry(Attributes(info))),
        layer_(info, [this](const TensorIn& w, Isa isa) { return PrepareFilter(w, geometry_, NibbleKernelFor(isa)); }),
        gather_panel_(GatherPanelFor(layer_.isa())), pack_channels_(PackChannelsFor(layer_.isa())),
        lane_bits_to_pixels_(LaneBitsToPixelsFor(layer_.isa())), sign_out_(HasOutput(info, 1)),
        implicit_gemm_(IsAvx512(layer_.isa()) || ImplicitGemmOnEveryIsa()),
        pixel_block_(ColumnBlockFor(layer_.isa())) {
    Check(!sign_out_ || (layer_.spec().mode == OutputMode::kFloat && geometry_.group == 1),
          "output 1 (the packed signs of output 0) needs float output (packed_output=0) and group=1");
  }

  // layer_ holds a callback into this object: never copied or moved.
  BinaryConv2D(const BinaryConv2D&) = delete;
  BinaryConv2D& operator=(const BinaryConv2D&) = delete;

  void Compute(Ort::KernelContext& ctx) const {
    layer_.WithInputs(ctx, [&](const TensorIn& x, const PackedFilter& filter, const OutputParams& params,
                               const std::optional<TensorIn>& residual) { Run(ctx, x, filter, params, residual); });
  }

 private:
  // The input's packed words, every group's channels starting on a word boundary (so a group's words are whole
  // words), pixel_stride = group * words_per_group words per pixel, laid out
  // - channel-last (NHWC): group g of pixel p at base + p * pixel_stride + g * words_per_group; or
  // - word-planar (an implicit GEMM's B, Grid): word w of every pixel in its own zero-padded plane, pixel (h, x)'s
  //   at base + w * grid.plane_words + (h + pad_top) * grid.width + pad_left + x.
  struct PackedInput {
    const Word* base = nullptr;
    int64_t pixel_stride = 0;
    int64_t image_words = 0;    // from one image to the next
    std::vector<Word> storage;  // used when the input had to be packed, regrouped or made planar
  };

  PackedInput PrepareInput(Ort::KernelContext& ctx, const TensorIn& x, int64_t batch, int64_t height, int64_t width,
                           const Grid* planar) const {
    const ConvGeometry& g = geometry_;
    PackedInput in;
    in.pixel_stride = g.group * g.words_per_group;
    const int64_t pixels = height * width;
    const bool packed = x.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
    const bool groups_word_aligned = g.group == 1 || g.channels_per_group % kWordBits == 0;
    if (packed && groups_word_aligned && planar == nullptr) {
      in.base = x.As<Word>();
      in.image_words = pixels * in.pixel_stride;
      return in;
    }
    in.image_words = planar ? in.pixel_stride * planar->plane_words : pixels * in.pixel_stride;
    // Planar: the padding and the planes' tails are zeros (+1); every other word is written below.
    in.storage.assign(static_cast<size_t>(CheckedProduct({batch, in.image_words}, "packed input")), Word{0});
    Word* out = in.storage.data();
    in.base = out;
    if (pixels == 0) return in;  // an empty image (every tap padding): nothing to pack
    const int64_t chunks = (g.channels_per_group + kPackChannels - 1) / kPackChannels;  // per group
    const int64_t band_rows = std::min(height, (kPackPixels + width - 1) / width);
    const int64_t bands = (height + band_rows - 1) / band_rows;  // per image
    ParallelFor(ctx, static_cast<size_t>(batch * bands * g.group * chunks), [&](size_t task) {
      const int64_t band = static_cast<int64_t>(task) / (g.group * chunks);
      const int64_t grp = static_cast<int64_t>(task) % (g.group * chunks) / chunks;
      const int64_t chunk = static_cast<int64_t>(task) % chunks * kPackChannels;
      const int64_t n = band / bands, h_begin = band % bands * band_rows;
      const int64_t h_end = std::min(height, h_begin + band_rows);
      const int64_t c_begin = grp * g.channels_per_group + chunk;
      const int64_t count = std::min(kPackChannels, g.channels_per_group - chunk);
      const int64_t word = grp * g.words_per_group + chunk / kWordBits;
      Word* image_out = out + n * in.image_words;
      // Pixels [p_begin, p_end) go to image_out[p * out_stride + out_offset].
      const auto write = [&](int64_t p_begin, int64_t p_end, int64_t out_stride, int64_t out_offset) {
        if (packed) {
          const int64_t in_stride = WordsFor(g.channels_in);
          ExtractChannels(x.As<Word>() + n * pixels * in_stride, in_stride, c_begin, count, p_begin, p_end, image_out,
                          out_stride, out_offset);
        } else {
          pack_channels_(x.As<float>() + n * g.channels_in * pixels, pixels, c_begin, count, p_begin, p_end,
                         image_out, out_stride, out_offset);
        }
      };
      if (planar == nullptr) {
        write(h_begin * width, h_end * width, in.pixel_stride, word);
        return;
      }
      for (int64_t h = h_begin; h < h_end; ++h) {  // a row at a time: the grid's rows are wider
        write(h * width, (h + 1) * width, 1,
              word * planar->plane_words + (h + g.pad_top) * planar->width + g.pad_left - h * width);
      }
    });
    return in;
  }

  void Run(Ort::KernelContext& ctx, const TensorIn& x, const PackedFilter& f, const OutputParams& params,
           const std::optional<TensorIn>& residual) const {
    const ConvGeometry& g = geometry_;
    CheckRank(x, "input (input 0)", 4);
    int64_t batch = x.shape[0], height, width;
    if (x.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
      Check(x.shape[1] == g.channels_in, "float input (input 0) shape ", ShapeStr(x.shape), " has ", x.shape[1],
            " channels but channels_in=", g.channels_in);
      height = x.shape[2], width = x.shape[3];
    } else {
      Check(x.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, "input (input 0) must be float [N,C,H,W] or packed ",
            "int32 [N,H,W,words], got ", TypeName(x.type));
      Check(x.shape[3] == WordsFor(g.channels_in), "packed input (input 0) shape ", ShapeStr(x.shape), " has ",
            x.shape[3], " words per pixel but channels_in=", g.channels_in, " needs ", WordsFor(g.channels_in));
      height = x.shape[1], width = x.shape[2];
    }
    CheckedProduct(x.shape, "input (input 0)");
    const int64_t out_h =
        SlidingWindowSize(height, g.pad_top, g.pad_bottom, f.kernel_h, g.dilation_h, g.stride_h, "height");
    const int64_t out_w =
        SlidingWindowSize(width, g.pad_left, g.pad_right, f.kernel_w, g.dilation_w, g.stride_w, "width");
    const int64_t out_c = f.out_channels;
    const bool packed_out = params.spec().mode == OutputMode::kPacked;
    const std::vector<int64_t> out_shape = packed_out ? std::vector<int64_t>{batch, out_h, out_w, WordsFor(out_c)}
                                                      : std::vector<int64_t>{batch, out_c, out_h, out_w};
    CheckedProduct(out_shape, "output");
    Ort::UnownedValue y = ctx.GetOutput(0, out_shape);
    // Output 1: the float output's signs, packed, written by the GEMM's store (the next binary layer's input).
    Word* y_bits = nullptr;
    if (sign_out_) {
      Ort::UnownedValue bits = ctx.GetOutput(1, {batch, out_h, out_w, WordsFor(out_c)});
      y_bits = reinterpret_cast<Word*>(bits.GetTensorMutableData<int32_t>());
    }
    if (batch == 0) return;
    float* y_float = packed_out ? nullptr : y.GetTensorMutableData<float>();
    const float* residual_float = packed_out ? nullptr : ResidualData(residual, out_shape);
    Word* y_packed = packed_out ? reinterpret_cast<Word*>(y.GetTensorMutableData<int32_t>()) : nullptr;

    const int64_t pixel_stride = g.group * g.words_per_group;
    // Every word offset into an image, its padding included (a gather's lane and tap offsets, the implicit GEMM's
    // planes), fits int32.
    const Grid grid = GridFor(g, height, width);  // used with the implicit GEMM
    Check(grid.plane_words <= std::numeric_limits<int32_t>::max() / pixel_stride, "input (input 0) shape ",
          ShapeStr(x.shape), " with pads ", ShapeStr({g.pad_top, g.pad_left, g.pad_bottom, g.pad_right}),
          ": a padded image of more than 2^31 packed words is not supported");
    const int64_t pixels = out_h * out_w;
    const int64_t field_words = f.field_words;
    const int64_t per_group = out_c / g.group;
    const int32_t full_field = static_cast<int32_t>(f.Taps() * g.channels_per_group);
    const Window window = f.Over(height, width);
    const std::shared_ptr<const SizeTables> tables = TablesFor(f, window, out_h, out_w, pixel_stride, packed_out);
    const PaddingKinds& padding = tables->padding;
    const bool filter_lanes = tables->filter_lanes, implicit = tables->implicit;
    const PackedInput in = PrepareInput(ctx, x, batch, height, width, implicit ? &grid : nullptr);
    // Without the implicit GEMM, one image's receptive fields, per group, in panels: the GEMM's panel side with
    // pixels as lanes, its rows (a panel's rows, a word per 16) with filters as lanes. Every word is written for
    // each image, padded taps and the lanes of the last panel past the last pixel as zeros. A nibble kernel
    // (NibbleKernelFor) has them gathered in its form instead: the pixels-as-lanes GEMM's nibble panels, or the
    // filters-as-lanes GEMM's rows (a pixel's at p * positions).
    const NibbleKernel* const nibbles = implicit ? nullptr : layer_.nibbles();
    const int64_t group_words = PanelWords(pixels, field_words);
    Word* fields = implicit || nibbles ? nullptr : ThreadScratch<FieldsScratch, Word>(
        static_cast<size_t>(CheckedProduct({g.group, group_words}, "receptive fields")));
    const int64_t positions = NibblePositions(field_words);
    const int64_t group_nibble_bytes = (pixels + kNibbleColumns - 1) / kNibbleColumns * NibblePanelBytes(field_words);
    uint8_t* nibble_fields = nibbles ? ThreadScratch<NibbleFieldsScratch, uint8_t>(static_cast<size_t>(
        CheckedProduct({g.group, group_nibble_bytes}, "receptive fields"))) : nullptr;
    const BinaryGemmFn gemm = layer_.gemm();

    const std::vector<int32_t> tap_offsets = TapOffsets(g, window, width, pixel_stride);
    const int64_t panels = (pixels + kPanelLanes - 1) / kPanelLanes;

    for (int64_t n = 0; n < batch; ++n) {
      const Word* image = in.base + n * in.image_words;
      if (!implicit) {
        ParallelFor(ctx, static_cast<size_t>(g.group * panels), [&](size_t task) {
          const int64_t grp = static_cast<int64_t>(task) / panels, panel = static_cast<int64_t>(task) % panels;
          const Word* const group_image = image + grp * g.words_per_group;
          const int32_t* const lane_offsets = tables->lane_offsets.data() + panel * kPanelLanes;
          const uint16_t* const tap_masks = tables->tap_masks.data() + panel * f.Taps();
          if (nibbles) {
            const int64_t rows = filter_lanes ? std::min(kPanelLanes, pixels - panel * kPanelLanes) : 0;
            GatherNibbles(*nibbles, group_image, lane_offsets, tap_offsets.data(), tap_masks, f.Taps(),
                          g.words_per_group, pixel_stride, panel, panels, rows,
                          nibble_fields + grp * group_nibble_bytes);
            return;
          }
          gather_panel_(group_image, lane_offsets, tap_offsets.data(), tap_masks, f.Taps(), g.words_per_group,
                        fields + grp * group_words + panel * field_words * kPanelLanes);
        });
      }
      if (filter_lanes) {
        // Packed output: tasks of kPixelRows pixels (whole output words) x a chunk of filters. Float output is
        // scattered along each filter's row of pixels: tasks of up to kScatterPixels pixels x kScatterFilters
        // filters, so that two threads seldom write into one cache line of a row. With several groups, a task
        // takes every group's filters.
        const int64_t block = packed_out ? kPixelRows : std::min(pixels, kScatterPixels);
        const int64_t scatter_filters = nibbles ? 2 * kNibbleColumns : kScatterFilters;  // whole nibble tiles
        const int64_t chunk = g.group > 1 ? out_c : packed_out ? kFilterChunk : scatter_filters;
        const int64_t chunks = (out_c + chunk - 1) / chunk;
        const int64_t tasks = (pixels + block - 1) / block * chunks;
        ParallelFor(ctx, static_cast<size_t>(tasks), [&](size_t task) {
          const int64_t p_begin = static_cast<int64_t>(task) / chunks * block;
          const int64_t p_end = std::min(pixels, p_begin + block);
          const int64_t c_begin = static_cast<int64_t>(task) % chunks * chunk;
          const int64_t c_end = std::min(out_c, c_begin + chunk);
          // Packed output's bits come straight from the GEMM's store with one group; with several (a group's filters
          // may start inside a word) from dots, through WriteBits.
          const bool via_dots = packed_out && g.group > 1;
          int32_t* dots =
              via_dots ? ThreadScratch<DotsScratch, int32_t>(static_cast<size_t>(block * (c_end - c_begin))) : nullptr;
          Word* words =
              packed_out ? y_packed + (n * pixels + p_begin) * WordsFor(out_c) + c_begin / kWordBits : nullptr;
          // The float output's signs (group 1, chunks of whole words) are stored like packed output's bits.
          Word* sign_words = y_bits ? y_bits + (n * pixels + p_begin) * WordsFor(out_c) + c_begin / kWordBits : nullptr;
          // The store writes the 16-bit halves holding columns and leaves the rest of a word (a chunk's upper half
          // without a channel) alone: zeroed first.
          Word* bit_words = packed_out ? (via_dots ? nullptr : words) : sign_words;
          for (int64_t p = p_begin; bit_words && p < p_end; ++p) {
            std::fill_n(bit_words + (p - p_begin) * WordsFor(out_c), WordsFor(c_end - c_begin), Word{0});
          }
          for (int64_t grp = 0; grp < g.group; ++grp) {
            // This task's filters of group grp: [o_begin, o_end), starting on a panel of the group's filters.
            const int64_t o_begin = std::max(c_begin, grp * per_group), o_end = std::min(c_end, (grp + 1) * per_group);
            if (o_begin >= o_end) continue;
            // The GEMM reads A's rows (pixels) from one panel of fields at a time.
            for (int64_t p = p_begin, next; p < p_end; p = next) {
              next = std::min(p_end, (p / kPanelLanes + 1) * kPanelLanes);
              GemmOutput out{full_field, via_dots ? c_end - c_begin : packed_out ? WordsFor(out_c) : pixels};
              if (via_dots) {
                out.dots = dots + (p - p_begin) * (c_end - c_begin) + (o_begin - c_begin);  // [pixel][filter]
              } else if (packed_out) {
                out.words = words + (p - p_begin) * WordsFor(out_c);
                out.below = params.below() + o_begin, out.above = params.above() + o_begin;
              } else {
                StoreFloatsAt(out, params, y_float, residual_float, (n * out_c + o_begin) * pixels + p, o_begin);
                out.transposed = true;
                if (sign_words) {
                  out.sign_bits = reinterpret_cast<uint16_t*>(sign_words + (p - p_begin) * WordsFor(out_c));
                  out.sign_stride = 2 * WordsFor(out_c);  // halves
                }
              }
              if (!padding.kinds.empty()) {
                out.row_kinds = padding.pixel_kinds.data() + p;
                out.kind_offsets = padding.offsets.data() + o_begin, out.kinds_stride = out_c;
              }
              if (nibbles) {
                // o_begin - grp * per_group is a multiple of the chunk, or 0: whole nibble panels.
                nibbles->gemm(nibble_fields + grp * group_nibble_bytes + p * positions, next - p,
                              f.nibble_panels.data() + grp * GroupNibbleBytes(f, per_group) +
                                  (o_begin - grp * per_group) / kNibbleColumns * NibblePanelBytes(field_words),
                              o_end - o_begin, positions, out);
                continue;
              }
              gemm(fields + grp * group_words + PanelOffset(p, field_words), 1, kPanelLanes, next - p,
                   PanelB(f.panels.data() + grp * PanelWords(per_group, field_words), o_begin - grp * per_group,
                          field_words),
                   o_end - o_begin, field_words, out);
            }
          }
          for (int64_t p = p_begin; via_dots && p < p_end; ++p) {
            params.WriteBits(dots + (p - p_begin) * (c_end - c_begin), c_begin, c_end - c_begin,
                             words + (p - p_begin) * WordsFor(out_c));
          }
        });
        continue;
      }
      // Pixels as lanes: the GEMM's columns are the output pixels, or with the implicit GEMM the padded grid's
      // pixels up to the last output pixel (grid columns past the output width are computed, not stored).
      const int64_t columns = implicit ? GridColumns(grid, out_h, out_w) : pixels;
      const int64_t filter_blocks = (per_group + kFilterBlock - 1) / kFilterBlock;
      const int64_t pixel_blocks = (columns + pixel_block_ - 1) / pixel_block_;
      ParallelFor(ctx, static_cast<size_t>(g.group * filter_blocks * pixel_blocks), [&](size_t task) {
        const int64_t block = static_cast<int64_t>(task) % pixel_blocks;
        const int64_t filter_block = static_cast<int64_t>(task) / pixel_blocks;
        const int64_t grp = filter_block / filter_blocks;
        const int64_t o_begin = grp * per_group + filter_block % filter_blocks * kFilterBlock;
        const int64_t filters = std::min(kFilterBlock, (grp + 1) * per_group - o_begin);
        const int64_t p_begin = block * pixel_block_;
        const int64_t count = std::min(pixel_block_, columns - p_begin);
        GemmOutput out{full_field, pixels};
        // Packed output, or the float output's signs (one group, so this task's filters fill whole words): per
        // panel and filter the panel's bits, then turned into the pixels' words.
        uint16_t lane_bits[kMaxPixelBlock / kPanelLanes * kFilterBlock];
        Word* const bits_out = packed_out ? y_packed : y_bits;
        if (packed_out) {
          out.stride = kFilterBlock, out.lane_bits = lane_bits;
          out.below = params.below() + o_begin, out.above = params.above() + o_begin;
        } else {
          StoreFloatsAt(out, params, y_float, residual_float,
                        (n * out_c + o_begin) * pixels + (implicit ? 0 : p_begin), o_begin);
          if (y_bits) out.sign_bits = lane_bits, out.sign_stride = kFilterBlock;
        }
        if (!padding.kinds.empty()) {
          out.column_kinds = (implicit ? tables->grid_kinds : padding.column_kinds).data() + p_begin;
          out.kind_offsets = padding.filter_offsets.data() + o_begin * GemmOutput::kKinds;
        }
        if (implicit) {
          out.panel_valid = tables->panel_valid.data() + p_begin / kPanelLanes;
          out.panel_first = tables->panel_first.data() + p_begin / kPanelLanes;
        }
        if (nibbles) {  // p_begin is a multiple of pixel_block_, two nibble panels
          const uint8_t* panels = nibble_fields + grp * group_nibble_bytes;
          nibbles->gemm(f.nibble_rows.data() + o_begin * positions, filters,
                        panels + p_begin / kNibbleColumns * NibblePanelBytes(field_words), count, positions, out);
        } else {
          const GemmB b = implicit ? GemmB{image + grp * g.words_per_group * grid.plane_words + p_begin, kPanelLanes,
                                           tables->grid_offsets.data()}
                                   : PanelB(fields + grp * group_words, p_begin, field_words);
          gemm(f.rows.data() + o_begin * field_words, field_words, 1, filters, b, count, field_words, out);
        }
        for (int64_t panel = 0; bits_out && panel * kPanelLanes < count; ++panel) {
          const int64_t at = p_begin / kPanelLanes + panel;
          const int64_t lanes_in = std::min(kPanelLanes, count - panel * kPanelLanes);
          const int64_t first = implicit ? tables->panel_first[at] : at * kPanelLanes;
          const uint16_t lanes = implicit ? tables->panel_valid[at] : static_cast<uint16_t>((1u << lanes_in) - 1);
          Word* words = bits_out + (n * pixels + first) * WordsFor(out_c) + o_begin / kWordBits;
          lane_bits_to_pixels_(lane_bits + panel * kFilterBlock, filters, lanes, words, WordsFor(out_c));
        }
      });
    }
  }

  // The tables for an input size. Building them is a pass over every output pixel, so with constant weights they
  // are kept for the last input size seen (a model usually runs one size).
  std::shared_ptr<const SizeTables> TablesFor(const PackedFilter& f, const Window& w, int64_t out_h, int64_t out_w,
                                              int64_t pixel_stride, bool packed_out) const {
    const auto make = [&] {
      return std::make_shared<const SizeTables>(
          MakeSizeTables(geometry_, f, w, out_h, out_w, pixel_stride, packed_out, implicit_gemm_,
                         layer_.nibbles() ? pixel_block_ : kPanelLanes));
    };
    if (!layer_.constant_weights()) return make();
    std::lock_guard<std::mutex> lock(tables_cache_.mutex);
    const std::array<int64_t, 3> key{w.height, w.width, pixel_stride};
    if (!tables_cache_.tables || tables_cache_.key != key) {
      tables_cache_.tables = make();
      tables_cache_.key = key;
    }
    return tables_cache_.tables;
  }

  ConvGeometry geometry_;
  BinaryLayer<PackedFilter> layer_;
  GatherPanelFn gather_panel_;
  PackChannelsFn pack_channels_;
  LaneBitsToPixelsFn lane_bits_to_pixels_;
  bool sign_out_;  // output 1: the float output's signs, packed
  bool implicit_gemm_;  // whether ChooseGemmForm may pick the implicit GEMM (see ImplicitGemmOnEveryIsa)
  int64_t pixel_block_;  // pixels per task with pixels as lanes (at most kMaxPixelBlock)
  // TablesFor's tables for the last input size (height, width, words per pixel); runs of one session may come from
  // several threads.
  mutable struct {
    std::mutex mutex;
    std::array<int64_t, 3> key{};
    std::shared_ptr<const SizeTables> tables;
  } tables_cache_;
};

}  // namespace

OpList BinaryConv2DOps(Typing typing) { return BinaryLayerOps<BinaryConv2D>(typing); }

}  // namespace bnn2onnx
