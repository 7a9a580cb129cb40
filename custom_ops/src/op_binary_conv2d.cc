// BinaryConv2D (docs/ops.md): a 2-D convolution of +-1 activations with +-1 weights by xor/popcount.
//
// Per output row and group, each pixel's receptive field is gathered into one packed row (padded taps as +1,
// i.e. zero words; the row padded with zero words to the GEMM's alignment), and the binary GEMM counts the
// differing bits against every filter of the group. One padding is then already exact; zero padding subtracts,
// at border pixels, what a +1 input would have contributed at each padded tap (precomputed per filter tap).
#include <algorithm>
#include <cstring>
#include <optional>

#include "binary_layer.h"
#include "bitpacking.h"
#include "ops.h"

namespace bnn2onnx {
namespace {

struct ConvGeometry {
  int64_t channels_in = 0, group = 1, channels_per_group = 0, words_per_group = 0;
  int64_t stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  bool one_padding = false;
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
  Check(pad_value == 0 || pad_value == 1, "attribute 'pad_value' must be 0 (zero padding) or 1 (+1 padding), got ",
        pad_value);
  g.one_padding = pad_value == 1;
  g.kernel_shape = attributes.OptionalInts("kernel_shape");
  return g;
}

// The packed filter plus, per filter tap, what a tap of all-+1 input contributes: Cg - 2 * popcount(w_tap).
struct PackedFilter {
  int64_t out_channels = 0, kernel_h = 0, kernel_w = 0;
  int64_t row_words = 0;         // GemmWords(KH * KW * words_per_group)
  std::vector<Word> bits;        // [O, row_words]: [KH, KW, words_per_group] then zero words
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
  const int64_t filter_words = f.Taps() * g.words_per_group;
  f.row_words = GemmWords(filter_words);
  f.bits.assign(static_cast<size_t>(f.out_channels * f.row_words), Word{0});
  for (int64_t o = 0; o < f.out_channels; ++o) {
    std::copy(w.As<Word>() + o * filter_words, w.As<Word>() + (o + 1) * filter_words, f.bits.begin() + o * f.row_words);
  }
  f.tap_sum.resize(rows);
  const Word* taps = w.As<Word>();
  for (int64_t r = 0; r < rows; ++r) {
    int32_t negatives = 0;
    for (int64_t i = 0; i < g.words_per_group; ++i) negatives += __builtin_popcount(taps[r * g.words_per_group + i]);
    f.tap_sum[r] = static_cast<int32_t>(g.channels_per_group) - 2 * negatives;
  }
  return f;
}

class BinaryConv2D {
 public:
  static constexpr const char* kName = "BinaryConv2D";
  static constexpr auto kInputTypes = kBinaryLayerInputTypes;
  static constexpr ONNXTensorElementDataType kOutputType = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;  // by mode

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
        layer_(info, [this](const TensorIn& w) { return PrepareFilter(w, geometry_); }) {}

  // layer_ holds a callback into this object: never copied or moved.
  BinaryConv2D(const BinaryConv2D&) = delete;
  BinaryConv2D& operator=(const BinaryConv2D&) = delete;

  void Compute(Ort::KernelContext& ctx) const {
    layer_.WithInputs(ctx, [&](const TensorIn& x, const PackedFilter& filter, const OutputParams& params) {
      Run(ctx, x, filter, params);
    });
  }

 private:
  // Where group g of pixel p starts: base + p * pixel_stride + g * words_per_group.
  struct PackedInput {
    const Word* base = nullptr;
    int64_t pixel_stride = 0;
    std::vector<Word> storage;  // used when the input had to be packed or regrouped
  };

  PackedInput PrepareInput(Ort::KernelContext& ctx, const TensorIn& x, int64_t batch, int64_t height,
                           int64_t width) const {
    const ConvGeometry& g = geometry_;
    PackedInput in;
    const bool packed = x.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
    const bool groups_word_aligned = g.group == 1 || g.channels_per_group % kWordBits == 0;
    if (packed && groups_word_aligned) {
      in.base = x.As<Word>();
      in.pixel_stride = WordsFor(g.channels_in);
      return in;
    }
    // Each group's channels start on a word boundary so the patch gather can copy whole words.
    in.pixel_stride = g.group * g.words_per_group;
    in.storage.resize(static_cast<size_t>(batch * height * width * in.pixel_stride));
    Word* out = in.storage.data();
    const int64_t pixels = height * width;
    ParallelFor(ctx, static_cast<size_t>(batch * height), [&](size_t row) {
      const int64_t n = static_cast<int64_t>(row) / height;
      const int64_t p_begin = (static_cast<int64_t>(row) % height) * width;
      for (int64_t grp = 0; grp < g.group; ++grp) {
        const int64_t c_begin = grp * g.channels_per_group;
        const int64_t offset = grp * g.words_per_group;
        Word* image_out = out + n * pixels * in.pixel_stride;
        if (packed) {
          const int64_t in_stride = WordsFor(g.channels_in);
          ExtractChannels(x.As<Word>() + n * pixels * in_stride, in_stride, c_begin, g.channels_per_group, p_begin,
                          p_begin + width, image_out, in.pixel_stride, offset);
        } else {
          PackChannels(x.As<float>() + n * g.channels_in * pixels, pixels, c_begin, g.channels_per_group, p_begin,
                       p_begin + width, image_out, in.pixel_stride, offset);
        }
      }
    });
    in.base = in.storage.data();
    return in;
  }

  void Run(Ort::KernelContext& ctx, const TensorIn& x, const PackedFilter& f, const OutputParams& params) const {
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
    const int64_t out_h = SlidingWindowSize(height, g.pad_top, g.pad_bottom, f.kernel_h, g.dilation_h, g.stride_h, "height");
    const int64_t out_w = SlidingWindowSize(width, g.pad_left, g.pad_right, f.kernel_w, g.dilation_w, g.stride_w, "width");
    const int64_t out_c = f.out_channels;
    const bool packed_out = params.spec().mode == OutputMode::kPacked;
    const std::vector<int64_t> out_shape = packed_out ? std::vector<int64_t>{batch, out_h, out_w, WordsFor(out_c)}
                                                      : std::vector<int64_t>{batch, out_c, out_h, out_w};
    CheckedProduct(out_shape, "output");
    Ort::UnownedValue y = ctx.GetOutput(0, out_shape);
    if (batch == 0) return;
    float* y_float = packed_out ? nullptr : y.GetTensorMutableData<float>();
    Word* y_packed = packed_out ? reinterpret_cast<Word*>(y.GetTensorMutableData<int32_t>()) : nullptr;

    const PackedInput in = PrepareInput(ctx, x, batch, height, width);
    const int64_t taps = f.Taps();
    const int64_t tap_words = g.words_per_group;
    const int64_t row_words = f.row_words;
    const int64_t out_per_group = out_c / g.group;
    const int32_t full_field = static_cast<int32_t>(taps * g.channels_per_group);
    const BinaryGemmFn gemm = layer_.gemm();
    // With one group, no horizontal dilation and whole-pixel taps, a kernel row reads kernel_w pixels that lie
    // back to back.
    const bool kernel_rows_contiguous = g.group == 1 && g.dilation_w == 1 && in.pixel_stride == tap_words;
    const int64_t kernel_row_words = f.kernel_w * tap_words;

    ParallelFor(ctx, static_cast<size_t>(batch * out_h), [&](size_t task) {
      const int64_t n = static_cast<int64_t>(task) / out_h;
      const int64_t oh = static_cast<int64_t>(task) % out_h;
      std::vector<Word> rows(static_cast<size_t>(out_w * row_words));  // one im2col row per output pixel
      // Accumulators [ow][o] for packed output (each pixel's channels become words), [o][ow] for float output
      // (each channel's row is written contiguously in NCHW).
      std::vector<int32_t> acc(static_cast<size_t>(out_w * out_c));
      const int64_t pixel_step = packed_out ? out_c : 1, channel_step = packed_out ? 1 : out_w;
      for (int64_t grp = 0; grp < g.group; ++grp) {
        std::fill(rows.begin(), rows.end(), Word{0});  // padded taps (+1) and the alignment tail
        for (int64_t ow = 0; ow < out_w; ++ow) {
          Word* row = rows.data() + ow * row_words;
          if (kernel_rows_contiguous && InsideInput(f, oh, ow, height, width)) {
            // Each kernel row's taps are consecutive pixels, stored back to back: one run of words per row.
            const int64_t top = oh * g.stride_h - g.pad_top, left = ow * g.stride_w - g.pad_left;
            for (int64_t kh = 0; kh < f.kernel_h; ++kh) {
              const Word* src = in.base + ((n * height + top + kh * g.dilation_h) * width + left) * in.pixel_stride;
              Word* dst = row + kh * kernel_row_words;
              for (int64_t i = 0; i < kernel_row_words; ++i) dst[i] = src[i];
            }
            continue;
          }
          for (int64_t kh = 0; kh < f.kernel_h; ++kh) {
            const int64_t ih = oh * g.stride_h - g.pad_top + kh * g.dilation_h;
            if (ih < 0 || ih >= height) continue;
            for (int64_t kw = 0; kw < f.kernel_w; ++kw) {
              const int64_t iw = ow * g.stride_w - g.pad_left + kw * g.dilation_w;
              if (iw < 0 || iw >= width) continue;
              const Word* src = in.base + ((n * height + ih) * width + iw) * in.pixel_stride + grp * tap_words;
              std::memcpy(row + (kh * f.kernel_w + kw) * tap_words, src, static_cast<size_t>(tap_words) * sizeof(Word));
            }
          }
        }
        const int64_t o_begin = grp * out_per_group;
        const Word* filters = f.bits.data() + o_begin * row_words;
        int32_t* counts = acc.data() + o_begin * channel_step;
        if (packed_out) {
          gemm(rows.data(), row_words, out_w, filters, row_words, out_per_group, row_words, counts, out_c);
        } else {
          gemm(filters, row_words, out_per_group, rows.data(), row_words, out_w, row_words, counts, out_w);
        }
      }
      for (int32_t& value : acc) value = full_field - 2 * value;
      if (!g.one_padding) {
        for (int64_t ow = 0; ow < out_w; ++ow) {
          SubtractPaddedTaps(f, oh, ow, height, width, acc.data() + ow * pixel_step, channel_step);
        }
      }
      if (packed_out) {
        const int64_t out_words = WordsFor(out_c);
        for (int64_t ow = 0; ow < out_w; ++ow) {
          params.WriteBits(acc.data() + ow * out_c, 0, out_c, y_packed + ((n * out_h + oh) * out_w + ow) * out_words);
        }
      } else {
        for (int64_t o = 0; o < out_c; ++o) {
          params.WriteChannelFloats(o, acc.data() + o * out_w, out_w, y_float + ((n * out_c + o) * out_h + oh) * out_w);
        }
      }
    });
  }

  // Whether every tap of output pixel (oh, ow) reads inside the input (no padding involved).
  bool InsideInput(const PackedFilter& f, int64_t oh, int64_t ow, int64_t height, int64_t width) const {
    const ConvGeometry& g = geometry_;
    const int64_t top = oh * g.stride_h - g.pad_top, left = ow * g.stride_w - g.pad_left;
    return top >= 0 && left >= 0 && top + (f.kernel_h - 1) * g.dilation_h < height &&
           left + (f.kernel_w - 1) * g.dilation_w < width;
  }

  // Zero padding: a padded tap was counted as +1 input; take away what +1 contributes there.
  // acc points at this pixel's first channel; channels are channel_step apart.
  void SubtractPaddedTaps(const PackedFilter& f, int64_t oh, int64_t ow, int64_t height, int64_t width,
                          int32_t* acc, int64_t channel_step) const {
    if (InsideInput(f, oh, ow, height, width)) return;
    const ConvGeometry& g = geometry_;
    const int64_t top = oh * g.stride_h - g.pad_top, left = ow * g.stride_w - g.pad_left;
    const int64_t taps = f.Taps();
    for (int64_t kh = 0; kh < f.kernel_h; ++kh) {
      const int64_t ih = top + kh * g.dilation_h;
      for (int64_t kw = 0; kw < f.kernel_w; ++kw) {
        const int64_t iw = left + kw * g.dilation_w;
        if (ih >= 0 && ih < height && iw >= 0 && iw < width) continue;
        const int64_t tap = kh * f.kernel_w + kw;
        for (int64_t o = 0; o < f.out_channels; ++o) acc[o * channel_step] -= f.tap_sum[o * taps + tap];
      }
    }
  }

  ConvGeometry geometry_;
  BinaryLayer<PackedFilter> layer_;
};

}  // namespace

const OrtCustomOp* BinaryConv2DOp() {
  static const CustomOp<BinaryConv2D> op;
  return &op;
}

}  // namespace bnn2onnx
