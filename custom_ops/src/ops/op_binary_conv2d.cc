// BinaryConv2D (docs/ops.md): a 2-D convolution of +-1 activations with +-1 weights by xor/popcount.
//
// Each output pixel's receptive field (per group) is one packed field of KH*KW taps (padded taps as +1, i.e. zero
// words), and the binary GEMM takes its +-1 dot product with every filter of the group (ChooseGemmForm):
// - Pixels as lanes: filters are the GEMM's row side and the fields its panels, so each filter's results are 16
//   pixels at once (float output, NCHW: stored 16 at a time; packed output: a 16-bit mask per filter, turned into
//   the pixels' words). At stride 1 the GEMM is implicit: the input is laid out word-planar on a zero-padded grid,
//   so the fields of 16 consecutive grid pixels are 16 consecutive words at every tap, read in place; otherwise
//   the fields are gathered into panels first.
// - Filters as lanes (when the pixels fill panels worse than the filters do, e.g. 7x7; packed output unless
//   implicit): gathered fields are the rows and the filters the panels.
// One padding is then already exact; zero padding adds, at border pixels, an offset that takes away what a +1
// input contributed at the padded taps (per filter and kind of border pixel), and -1 padding twice that.
#include <algorithm>
#include <array>
#include <cstdlib>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>

#include "ops/binary_layer.h"
#include "kernels/bitpacking.h"
#include "ops/ops.h"

namespace bnn2onnx {
namespace {

bool ImplicitGemmOnEveryIsa() {
  const char* setting = std::getenv("BNN2ONNX_IMPLICIT_GEMM");
  return setting != nullptr && std::string(setting) == "1";
}

struct ConvGeometry {
  int64_t channels_in = 0, group = 1, channels_per_group = 0, words_per_group = 0;
  int64_t stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  // The GEMM reads padded taps as +1 (zero words); at border pixels it takes away this many times what a +1 tap
  // contributed: 0 with +1 padding (pad_value=1), 1 with zero padding (0), 2 with -1 padding (-1).
  int32_t padding_correction = 1;
  std::optional<std::vector<int64_t>> kernel_shape;
};

ConvGeometry ReadGeometry(const Attributes& attributes) {
  ConvGeometry g;
  g.channels_in = attributes.RequiredInt("channels_in");
  Check(g.channels_in >= 1 && g.channels_in <= kMaxDim, "attribute 'channels_in' must be in [1, ", kMaxDim,
        "], got ", g.channels_in);
  g.group = attributes.Int("group", 1);
  Check(g.group >= 1 && g.channels_in % g.group == 0, "attribute 'group'=", g.group,
        " must be >= 1 and divide channels_in=", g.channels_in);
  g.channels_per_group = g.channels_in / g.group;
  g.words_per_group = WordsFor(g.channels_per_group);
  const std::vector<int64_t> strides = PairAttribute(attributes, "strides", {1, 1}, 1);
  const std::vector<int64_t> dilations = PairAttribute(attributes, "dilations", {1, 1}, 1);
  g.stride_h = strides[0], g.stride_w = strides[1];
  g.dilation_h = dilations[0], g.dilation_w = dilations[1];
  const std::vector<int64_t> pads = attributes.Ints("pads", {0, 0, 0, 0});
  Check(pads.size() == 4, "attribute 'pads' must have 4 values [top, left, bottom, right], got ", ShapeStr(pads));
  for (int64_t p : pads) Check(p >= 0 && p <= kMaxDim, "attribute 'pads' values must be in [0, ", kMaxDim,
                               "], got ", ShapeStr(pads));
  g.pad_top = pads[0], g.pad_left = pads[1], g.pad_bottom = pads[2], g.pad_right = pads[3];
  const int64_t pad_value = attributes.Int("pad_value", 0);
  Check(pad_value >= -1 && pad_value <= 1, "attribute 'pad_value' must be 0 (zero padding), 1 (+1 padding) or -1 ",
        "(-1 padding), got ", pad_value);
  g.padding_correction = static_cast<int32_t>(1 - pad_value);
  g.kernel_shape = attributes.OptionalInts("kernel_shape");
  return g;
}

// The packed filter in both GEMM layouts, plus, per filter tap, what a tap of all-+1 input contributes:
// Cg - 2 * popcount(w_tap).
struct PackedFilter {
  int64_t out_channels = 0, kernel_h = 0, kernel_w = 0;
  int64_t field_words = 0;       // KH * KW * words_per_group
  std::vector<Word> rows;        // [O, field_words]: the GEMM's row side (filters x pixel panels)
  std::vector<Word> panels;      // per group, its filters' panels: the GEMM's panel side (pixel rows x filters)
  std::vector<int32_t> tap_sum;  // [O, KH * KW]

  int64_t Taps() const { return kernel_h * kernel_w; }
};

PackedFilter PrepareFilter(const TensorIn& w, const ConvGeometry& g) {
  CheckType(w, "weights (input 1)", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32);
  CheckRank(w, "weights (input 1)", 4);
  PackedFilter f;
  f.out_channels = w.shape[0], f.kernel_h = w.shape[1], f.kernel_w = w.shape[2];
  Check(f.out_channels >= 1 && f.out_channels % g.group == 0, "weights (input 1) shape ", ShapeStr(w.shape),
        ": output channels must be >= 1 and a multiple of group=", g.group);
  Check(f.kernel_h >= 1 && f.kernel_w >= 1 && f.kernel_h <= kMaxDim && f.kernel_w <= kMaxDim,
        "weights (input 1) shape ", ShapeStr(w.shape), ": kernel size must be >= 1");
  Check(w.shape[3] == g.words_per_group, "weights (input 1) shape ", ShapeStr(w.shape), " has ", w.shape[3],
        " words per tap but channels_in=", g.channels_in, "/group=", g.group, " needs ", g.words_per_group);
  if (g.kernel_shape) {
    Check(*g.kernel_shape == std::vector<int64_t>{f.kernel_h, f.kernel_w}, "attribute 'kernel_shape' ",
          ShapeStr(*g.kernel_shape), " does not match weights shape ", ShapeStr(w.shape));
  }
  Check(f.Taps() * g.channels_per_group <= kMaxAccumulatorBits, "a receptive field of ", f.Taps(), " taps x ",
        g.channels_per_group, " channels exceeds the 2^30 accumulator range");
  const int64_t rows = f.out_channels * f.Taps();
  CheckedProduct(w.shape, "weights (input 1)");
  Check(TailBitsClear(w.As<Word>(), rows, g.words_per_group, g.channels_per_group),
        "weights (input 1) have bits set beyond channels_in/group=", g.channels_per_group,
        " in a tap's last word; padding bits must be 0");
  f.field_words = f.Taps() * g.words_per_group;
  const Word* filters = w.As<Word>();
  f.rows.assign(filters, filters + f.out_channels * f.field_words);
  const int64_t per_group = f.out_channels / g.group, group_words = PanelWords(per_group, f.field_words);
  f.panels.resize(static_cast<size_t>(g.group * group_words));
  for (int64_t grp = 0; grp < g.group; ++grp) {
    PackPanels(filters + grp * per_group * f.field_words, f.field_words, per_group, f.field_words,
               f.panels.data() + grp * group_words);
  }
  f.tap_sum.resize(rows);
  for (int64_t r = 0; r < rows; ++r) {
    int32_t negatives = 0;
    for (int64_t i = 0; i < g.words_per_group; ++i) negatives += __builtin_popcount(filters[r * g.words_per_group + i]);
    f.tap_sum[r] = static_cast<int32_t>(g.channels_per_group) - 2 * negatives;
  }
  return f;
}

// Work split of the GEMM. Pixels as lanes: tasks of up to kFilterBlock filters (a multiple of a word's 32, so a
// task writes whole output words) x kPixelBlock pixels (whole panels, a multiple of the AVX-512 kernel's 3-panel
// tile). Filters as lanes, packed output: tasks of kPixelRows pixels
// (two of its 4-row tiles, within one panel of fields) x up to kFilterChunk filters (a multiple of the tile's 48
// and of a word's 32, so a task writes whole output words). Filters as lanes, float output: tasks of up to
// kScatterPixels pixels x kScatterFilters filters (two panels). Either way a small late layer (7x7 x 512) still
// splits into enough tasks to balance two threads.
constexpr int64_t kFilterBlock = 64, kPixelBlock = 3 * kPanelLanes, kPixelRows = 8, kFilterChunk = 192;
constexpr int64_t kScatterPixels = 256, kScatterFilters = 32;
// The float input is packed in tasks of a band of whole input rows, at least kPackPixels pixels (long sequential
// reads of each channel), x one word of a group's channels.
constexpr int64_t kPackPixels = 256, kPackChannels = kWordBits;

// ThreadScratch buffers: the receptive fields of an image; a packed-output task's dots.
struct FieldsScratch;
struct DotsScratch;

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
        layer_(info, [this](const TensorIn& w) { return PrepareFilter(w, geometry_); }),
        gather_panel_(GatherPanelFor(layer_.isa())), pack_channels_(PackChannelsFor(layer_.isa())),
        lane_bits_to_pixels_(LaneBitsToPixelsFor(layer_.isa())), sign_out_(HasOutput(info, 1)),
        implicit_gemm_(IsAvx512(layer_.isa()) || ImplicitGemmOnEveryIsa()) {
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

  // The zero-padded grid of a word-planar input: `width` columns, and each plane's words (the grid's rows and the
  // lanes that the last panel of output pixels reads past them).
  struct Grid {
    int64_t width = 0, plane_words = 0;
  };

  // The implicit GEMM's columns: the grid's pixels up to the last output pixel (stride 1: output pixel (oh, ow) is
  // the grid's pixel oh * width + ow, its receptive field's top-left word).
  static int64_t GridColumns(const Grid& grid, int64_t out_h, int64_t out_w) {
    return (out_h - 1) * grid.width + out_w;
  }

  // Every term is at most 3 * kMaxDim (op_common.h), so the grid's size cannot overflow.
  Grid GridFor(int64_t height, int64_t width) const {
    const ConvGeometry& g = geometry_;
    Grid grid;
    grid.width = width + g.pad_left + g.pad_right;
    grid.plane_words = (height + g.pad_top + g.pad_bottom) * grid.width + kPanelLanes;
    return grid;
  }

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
    const Grid grid = GridFor(height, width);  // used with the implicit GEMM
    Check(grid.plane_words <= std::numeric_limits<int32_t>::max() / pixel_stride, "input (input 0) shape ",
          ShapeStr(x.shape), " with pads ", ShapeStr({g.pad_top, g.pad_left, g.pad_bottom, g.pad_right}),
          ": a padded image of more than 2^31 packed words is not supported");
    const int64_t pixels = out_h * out_w;
    const int64_t field_words = f.field_words;
    const int64_t per_group = out_c / g.group;
    const int32_t full_field = static_cast<int32_t>(f.Taps() * g.channels_per_group);
    const Window window{f, height, width};
    const std::shared_ptr<const SizeTables> tables = TablesFor(window, out_h, out_w, pixel_stride, packed_out);
    const PaddingKinds& padding = tables->padding;
    const bool filter_lanes = tables->filter_lanes, implicit = tables->implicit;
    const PackedInput in = PrepareInput(ctx, x, batch, height, width, implicit ? &grid : nullptr);
    // Without the implicit GEMM, one image's receptive fields, per group, in panels: the GEMM's panel side with
    // pixels as lanes, its rows (a panel's rows, a word per 16) with filters as lanes. Every word is written for
    // each image, padded taps and the lanes of the last panel past the last pixel as zeros.
    const int64_t group_words = PanelWords(pixels, field_words);
    Word* fields = implicit ? nullptr : ThreadScratch<FieldsScratch, Word>(
        static_cast<size_t>(CheckedProduct({g.group, group_words}, "receptive fields")));
    const BinaryGemmFn gemm = layer_.gemm();

    const std::vector<int32_t> tap_offsets = TapOffsets(f, width, pixel_stride);
    const int64_t panels = (pixels + kPanelLanes - 1) / kPanelLanes;

    for (int64_t n = 0; n < batch; ++n) {
      const Word* image = in.base + n * in.image_words;
      if (!implicit) {
        ParallelFor(ctx, static_cast<size_t>(g.group * panels), [&](size_t task) {
          const int64_t grp = static_cast<int64_t>(task) / panels, panel = static_cast<int64_t>(task) % panels;
          gather_panel_(image + grp * g.words_per_group, tables->lane_offsets.data() + panel * kPanelLanes,
                        tap_offsets.data(), tables->tap_masks.data() + panel * f.Taps(), f.Taps(), g.words_per_group,
                        fields + grp * group_words + panel * field_words * kPanelLanes);
        });
      }
      if (filter_lanes) {
        // Packed output: tasks of kPixelRows pixels (whole output words) x a chunk of filters. Float output is
        // scattered along each filter's row of pixels: tasks of up to kScatterPixels pixels x kScatterFilters
        // filters, so that two threads seldom write into one cache line of a row. With several groups, a task
        // takes every group's filters.
        const int64_t block = packed_out ? kPixelRows : std::min(pixels, kScatterPixels);
        const int64_t chunk = g.group > 1 ? out_c : packed_out ? kFilterChunk : kScatterFilters;
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
      const int64_t pixel_blocks = (columns + kPixelBlock - 1) / kPixelBlock;
      ParallelFor(ctx, static_cast<size_t>(g.group * filter_blocks * pixel_blocks), [&](size_t task) {
        const int64_t pixel_block = static_cast<int64_t>(task) % pixel_blocks;
        const int64_t filter_block = static_cast<int64_t>(task) / pixel_blocks;
        const int64_t grp = filter_block / filter_blocks;
        const int64_t o_begin = grp * per_group + filter_block % filter_blocks * kFilterBlock;
        const int64_t filters = std::min(kFilterBlock, (grp + 1) * per_group - o_begin);
        const int64_t p_begin = pixel_block * kPixelBlock;
        const int64_t count = std::min(kPixelBlock, columns - p_begin);
        GemmOutput out{full_field, pixels};
        // Packed output, or the float output's signs (one group, so this task's filters fill whole words): per
        // panel and filter the panel's bits, then turned into the pixels' words.
        uint16_t lane_bits[kPixelBlock / kPanelLanes * kFilterBlock];
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
        const GemmB b = implicit ? GemmB{image + grp * g.words_per_group * grid.plane_words + p_begin, kPanelLanes,
                                         tables->grid_offsets.data()}
                                 : PanelB(fields + grp * group_words, p_begin, field_words);
        gemm(f.rows.data() + o_begin * field_words, field_words, 1, filters, b, count, field_words, out);
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

  // The filter's extent and the input size: which taps of an output pixel read inside the input.
  struct Window {
    const PackedFilter& filter;
    int64_t height, width;
  };

  // Output pixel p as (row, column), then stepped along pixel by pixel without a division each (hot: per pixel).
  struct PixelCursor {
    int64_t oh, ow, out_w;
    PixelCursor(int64_t p, int64_t width) : oh(p / width), ow(p % width), out_w(width) {}
    void Next() {
      if (++ow == out_w) ow = 0, ++oh;
    }
  };

  // Whether every tap of output pixel (oh, ow) reads inside the input (no padding involved).
  bool InsideInput(const Window& w, int64_t oh, int64_t ow) const {
    const ConvGeometry& g = geometry_;
    const int64_t top = oh * g.stride_h - g.pad_top, left = ow * g.stride_w - g.pad_left;
    return top >= 0 && left >= 0 && top + (w.filter.kernel_h - 1) * g.dilation_h < w.height &&
           left + (w.filter.kernel_w - 1) * g.dilation_w < w.width;
  }

  // Where each tap of a receptive field starts, in words from its top-left pixel's group start, for an image
  // `width` pixels wide of `pixel_stride` words per pixel (a plane of the implicit GEMM's grid: 1).
  std::vector<int32_t> TapOffsets(const PackedFilter& f, int64_t width, int64_t pixel_stride) const {
    const ConvGeometry& g = geometry_;
    std::vector<int32_t> offsets;
    for (int64_t kh = 0; kh < f.kernel_h; ++kh) {
      for (int64_t kw = 0; kw < f.kernel_w; ++kw) {
        offsets.push_back(static_cast<int32_t>((kh * g.dilation_h * width + kw * g.dilation_w) * pixel_stride));
      }
    }
    return offsets;
  }

  // The panel of output pixels [p_begin, p_begin + 16) for the panel gather: each lane's top-left word offset in
  // its image (from its group's first word), and per tap the lanes whose tap lies inside the image (none past the
  // last pixel).
  void PanelLanes(const Window& w, int64_t p_begin, int64_t pixels, int64_t out_w, int64_t pixel_stride,
                  int32_t* lane_offsets, uint16_t* tap_masks) const {
    const ConvGeometry& g = geometry_;
    const PackedFilter& f = w.filter;
    std::fill(tap_masks, tap_masks + f.Taps(), uint16_t{0});
    uint16_t inside = 0;  // lanes whose every tap lies inside: set in every mask at the end
    PixelCursor at(p_begin, out_w);
    for (int64_t l = 0; l < kPanelLanes; ++l, at.Next()) {
      lane_offsets[l] = 0;
      if (p_begin + l >= pixels) continue;
      const int64_t oh = at.oh, ow = at.ow;
      const int64_t top = oh * g.stride_h - g.pad_top, left = ow * g.stride_w - g.pad_left;
      lane_offsets[l] = static_cast<int32_t>((top * w.width + left) * pixel_stride);
      if (InsideInput(w, oh, ow)) {
        inside |= static_cast<uint16_t>(1u << l);
        continue;
      }
      const PaddedTaps padded = PaddedTapsAt(w, oh, ow);
      for (int64_t kh = 0; kh < f.kernel_h; ++kh) {
        for (int64_t kw = 0; kw < f.kernel_w; ++kw) {
          if (padded.Inside(kh, kw, f.kernel_h, f.kernel_w)) tap_masks[kh * f.kernel_w + kw] |= 1u << l;
        }
      }
    }
    for (int64_t t = 0; t < f.Taps(); ++t) tap_masks[t] |= inside;
  }

  // Whether float output computes fewer idle lanes with filters as lanes (e.g. 49 pixels fill 4 panels, 64 lanes,
  // while 512 filters fill 32 exactly), by a margin that pays for its scattered stores. Its scatter indices
  // (16 rows of `pixels` floats) must fit int32.
  static bool FilterLanesFillBetter(int64_t pixels, int64_t filters) {
    const auto lanes = [](int64_t n) { return (n + kPanelLanes - 1) / kPanelLanes * kPanelLanes; };
    return pixels * kPanelLanes <= std::numeric_limits<int32_t>::max() &&
           lanes(filters) * pixels * 8 < lanes(pixels) * filters * 7;
  }

  // Which taps of an output pixel zero padding touches: kernel rows [0, top) and [KH - bottom, KH), kernel
  // columns [0, left) and [KW - right, KW) (padded rows and columns are a prefix and a suffix, dilated or not).
  struct PaddedTaps {
    int64_t top = 0, bottom = 0, left = 0, right = 0;
    bool operator==(const PaddedTaps& o) const {
      return top == o.top && bottom == o.bottom && left == o.left && right == o.right;
    }
    // Whether tap (kh, kw) of a kernel_h x kernel_w filter reads inside the input.
    bool Inside(int64_t kh, int64_t kw, int64_t kernel_h, int64_t kernel_w) const {
      return kh >= top && kh < kernel_h - bottom && kw >= left && kw < kernel_w - right;
    }
  };

  PaddedTaps PaddedTapsAt(const Window& w, int64_t oh, int64_t ow) const {
    const ConvGeometry& g = geometry_;
    const int64_t top = oh * g.stride_h - g.pad_top, left = ow * g.stride_w - g.pad_left;
    PaddedTaps t;
    for (int64_t kh = 0; kh < w.filter.kernel_h; ++kh) {
      const int64_t ih = top + kh * g.dilation_h;
      t.top += ih < 0, t.bottom += ih >= w.height;
    }
    for (int64_t kw = 0; kw < w.filter.kernel_w; ++kw) {
      const int64_t iw = left + kw * g.dilation_w;
      t.left += iw < 0, t.right += iw >= w.width;
    }
    return t;
  }

  // Zero padding: each output pixel's kind of border (0: none; a 3x3 kernel with pad 1 has 8 kinds), and per kind
  // and filter the dot offset, minus what +1 input contributed at the padded taps (GemmOutput adds it). Empty
  // with one padding.
  struct PaddingKinds {
    std::vector<PaddedTaps> kinds;     // kind k + 1 is kinds[k]
    std::vector<int32_t> pixel_kinds;  // [pixels rounded up to a panel]
    std::vector<int32_t> offsets;      // [kinds + 1, O]: pixels as rows
    std::vector<uint8_t> column_kinds;    // pixel_kinds as bytes: pixels as columns, after UseColumns()
    std::vector<int32_t> filter_offsets;  // [O, kKinds]: offsets transposed for pixels as columns, likewise

    bool FitColumns() const { return static_cast<int64_t>(kinds.size()) < GemmOutput::kKinds; }

    // Builds the pixels-as-columns forms (at most kKinds - 1 kinds: FitColumns()).
    void UseColumns(int64_t out_c) {
      column_kinds.assign(pixel_kinds.begin(), pixel_kinds.end());
      filter_offsets.assign(static_cast<size_t>(out_c * GemmOutput::kKinds), 0);
      for (int64_t k = 0; k <= static_cast<int64_t>(kinds.size()); ++k) {
        for (int64_t o = 0; o < out_c; ++o) filter_offsets[o * GemmOutput::kKinds + k] = offsets[k * out_c + o];
      }
    }
  };

  PaddingKinds MakePaddingKinds(const Window& w, int64_t out_h, int64_t out_w) const {
    PaddingKinds padding;
    if (geometry_.padding_correction == 0) return padding;
    const PackedFilter& f = w.filter;
    const int64_t pixels = out_h * out_w, out_c = f.out_channels;
    padding.pixel_kinds.assign(static_cast<size_t>(PanelWords(pixels, 1)), 0);
    for (PixelCursor at(0, out_w); at.oh < out_h; at.Next()) {
      if (InsideInput(w, at.oh, at.ow)) continue;
      const PaddedTaps t = PaddedTapsAt(w, at.oh, at.ow);
      auto kind = std::find(padding.kinds.begin(), padding.kinds.end(), t);
      if (kind == padding.kinds.end()) kind = padding.kinds.insert(kind, t);
      padding.pixel_kinds[at.oh * out_w + at.ow] = static_cast<int32_t>(kind - padding.kinds.begin() + 1);
    }
    const int64_t kinds = static_cast<int64_t>(padding.kinds.size()) + 1;
    padding.offsets.assign(static_cast<size_t>(kinds * out_c), 0);
    for (int64_t k = 1; k < kinds; ++k) {
      const PaddedTaps& t = padding.kinds[k - 1];
      for (int64_t kh = 0; kh < f.kernel_h; ++kh) {
        for (int64_t kw = 0; kw < f.kernel_w; ++kw) {
          if (t.Inside(kh, kw, f.kernel_h, f.kernel_w)) continue;
          const int64_t tap = kh * f.kernel_w + kw;
          for (int64_t o = 0; o < out_c; ++o) {
            padding.offsets[k * out_c + o] -= geometry_.padding_correction * f.tap_sum[o * f.Taps() + tap];
          }
        }
      }
    }
    return padding;
  }

  // The GEMM's form for an input size.
  // - Filters as lanes (else pixels as lanes): when that fills lanes better, or when there are too many kinds of
  //   border pixel for the pixels-as-lanes form; for packed output also unless the GEMM is implicit (pixels as
  //   lanes with gathered fields measured slower there) and with groups (a task's filters must fill output words).
  // - Implicit (B read in place from a word-planar padded input, no gather): pixels as lanes at stride 1, where a
  //   panel of 16 consecutive pixels of the padded grid reads 16 consecutive words of a plane at every tap. The
  //   grid's columns past the output width are computed for nothing: not when that costs more than gathering would
  //   (measured at 64@56: gathering a panel of fields costs about what the GEMM of 10 filters against it does;
  //   kGatherFilters leans towards the gather). AVX-512 only: the AVX2 and portable kernels lose more to B's word
  //   offsets and to panels across a row end than the gather costs (64@56: 1.2x and 2.4x slower), so they take it
  //   only with BNN2ONNX_IMPLICIT_GEMM=1 (ImplicitGemmOnEveryIsa), which lets the tests run its layout on CPUs
  //   without AVX-512.
  struct GemmForm {
    bool filter_lanes = false, implicit = false;
  };

  GemmForm ChooseGemmForm(bool packed_out, int64_t pixels, int64_t grid_columns, int64_t per_group,
                          const PaddingKinds& padding) const {
    constexpr int64_t kGatherFilters = 8;
    const auto panels = [](int64_t n) { return (n + kPanelLanes - 1) / kPanelLanes; };
    const bool pixel_lanes = !FilterLanesFillBetter(pixels, per_group) && padding.FitColumns();
    const bool implicit = pixel_lanes && implicit_gemm_ && geometry_.stride_h == 1 &&
                          geometry_.stride_w == 1 &&
                          panels(grid_columns) * per_group < panels(pixels) * (per_group + kGatherFilters) &&
                          (!packed_out || geometry_.group == 1);
    return {packed_out ? !implicit : !pixel_lanes, implicit};
  }

  // What a run needs to know of an input size besides the input itself: the padding kinds (in the form ChooseGemmForm
  // picks), the GEMM's form, and either for each panel of output pixels its gather lanes (PanelLanes), or the
  // implicit GEMM's padded grid (Grid): its pixels' kinds of border, each panel's column map (GemmOutput) and
  // where each word of a field starts (from its top-left pixel, in a group's planes).
  struct SizeTables {
    PaddingKinds padding;
    bool filter_lanes = false, implicit = false;
    std::vector<int32_t> lane_offsets;  // [panels][kPanelLanes]
    std::vector<uint16_t> tap_masks;    // [panels][taps]
    std::vector<uint8_t> grid_kinds;    // [grid panels][kPanelLanes], when there are border kinds
    std::vector<uint16_t> panel_valid;  // [grid panels]
    std::vector<int32_t> panel_first;   // [grid panels]
    std::vector<int32_t> grid_offsets;  // [field words]
  };

  // The implicit GEMM's tables (SizeTables) for a grid whose output is out_h x out_w.
  void MakeGridTables(const Window& w, const Grid& grid, int64_t out_h, int64_t out_w, SizeTables& tables) const {
    const ConvGeometry& g = geometry_;
    const PackedFilter& f = w.filter;
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
    for (const int32_t tap : TapOffsets(f, grid.width, 1)) {
      for (int64_t c = 0; c < g.words_per_group; ++c) {
        tables.grid_offsets.push_back(static_cast<int32_t>(c * grid.plane_words + tap));
      }
    }
  }

  // The tables for an input size. Building them is a pass over every output pixel, so with constant weights they
  // are kept for the last input size seen (a model usually runs one size).
  std::shared_ptr<const SizeTables> TablesFor(const Window& w, int64_t out_h, int64_t out_w, int64_t pixel_stride,
                                              bool packed_out) const {
    const auto make = [&] {
      auto tables = std::make_shared<SizeTables>();
      tables->padding = MakePaddingKinds(w, out_h, out_w);
      const int64_t pixels = out_h * out_w, out_c = w.filter.out_channels, taps = w.filter.Taps();
      const Grid grid = GridFor(w.height, w.width);
      const GemmForm form =
          ChooseGemmForm(packed_out, pixels, GridColumns(grid, out_h, out_w), out_c / geometry_.group, tables->padding);
      tables->filter_lanes = form.filter_lanes, tables->implicit = form.implicit;
      if (!tables->filter_lanes && !tables->padding.kinds.empty()) tables->padding.UseColumns(out_c);
      if (tables->implicit) {
        MakeGridTables(w, grid, out_h, out_w, *tables);
        return std::shared_ptr<const SizeTables>(std::move(tables));
      }
      const int64_t panels = (pixels + kPanelLanes - 1) / kPanelLanes;
      tables->lane_offsets.resize(static_cast<size_t>(panels * kPanelLanes));
      tables->tap_masks.resize(static_cast<size_t>(panels * taps));
      for (int64_t panel = 0; panel < panels; ++panel) {
        PanelLanes(w, panel * kPanelLanes, pixels, out_w, pixel_stride,
                   tables->lane_offsets.data() + panel * kPanelLanes, tables->tap_masks.data() + panel * taps);
      }
      return std::shared_ptr<const SizeTables>(std::move(tables));
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
  bool implicit_gemm_;  // whether ChooseGemmForm may pick the implicit GEMM
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
