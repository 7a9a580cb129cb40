// BinaryDense (docs/ops.md): y[n, m] from the +-1 dot product of row n of X with row m of W, by xor/popcount.
#include <algorithm>
#include <optional>

#include "ops/binary_layer.h"
#include "kernels/bitpacking.h"
#include "ops/ops.h"

namespace bnn2onnx {
namespace {

// Output channels per task; a multiple of the word size so each task writes whole packed words.
constexpr int64_t kChannelBlock = 64;
// Batch rows per task: a task's block of weights, read once, serves them all (a task per row streamed every
// weight from memory once per row: 4096 -> 4096 at batch 16 ran at a sixth of the popcount floor).
constexpr int64_t kRowGroup = 16;
// Batches from this size on take the nibble kernel where there is one (a tile's rows).
constexpr int64_t kNibbleBatch = 4;

int64_t ReadChannelsIn(const Attributes& attributes) {
  const int64_t channels_in = attributes.RequiredInt("channels_in");
  Check(channels_in >= 1 && channels_in <= kMaxDim, "attribute 'channels_in' must be in [1, ", kMaxDim, "], got ",
        channels_in);
  return channels_in;
}

// W's rows in the GEMM's panel layout, and for a nibble kernel also as its nibble panels (bgemm.h).
struct PackedMatrix {
  int64_t out_channels = 0;
  std::vector<Word> panels;            // PanelWords(out_channels, WordsFor(channels_in)) words
  std::vector<uint8_t> nibble_panels;  // ceil(out_channels / 32) nibble panels
};

PackedMatrix PrepareWeights(const TensorIn& w, int64_t channels_in, const NibbleKernel* nibbles) {
  CheckType(w, "weights (input 1)", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32);
  CheckRank(w, "weights (input 1)", 2);
  const int64_t words = WordsFor(channels_in);
  Check(w.shape[0] >= 1 && w.shape[0] <= kMaxDim, "weights (input 1) shape ", ShapeStr(w.shape),
        ": output channels must be in [1, ", kMaxDim, "]");
  Check(w.shape[1] == words, "weights (input 1) shape ", ShapeStr(w.shape), " has ", w.shape[1],
        " words per row but channels_in=", channels_in, " needs ", words);
  Check(TailBitsClear(w.As<Word>(), w.shape[0], words, channels_in), "weights (input 1) have bits set beyond ",
        "channels_in=", channels_in, " in a row's last word; padding bits must be 0");
  PackedMatrix m{w.shape[0], std::vector<Word>(static_cast<size_t>(PanelWords(w.shape[0], words))), {}};
  PackPanels(w.As<Word>(), words, m.out_channels, words, m.panels.data());
  if (nibbles) {
    m.nibble_panels.resize(static_cast<size_t>((m.out_channels + kNibbleColumns - 1) / kNibbleColumns *
                                               NibblePanelBytes(words)));
    nibbles->panels(m.panels.data(), m.out_channels, words, m.nibble_panels.data());
  }
  return m;
}

class BinaryDense {
 public:
  static constexpr const char* kName = "BinaryDense";
  static constexpr auto kInputTypes = kBinaryLayerInputTypes;
  static constexpr size_t kRequiredInputs = kBinaryLayerRequiredInputs;
  static constexpr std::array<ONNXTensorElementDataType, 1> kOutputTypes = {
      ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED};  // by mode

  static void InferShape(const ShapeInference& s) {
    const bool packed_out = s.Int("packed_output").value_or(0) == 1;
    Dims x = s.InputDims(0).value_or(Dims(2)), w = s.InputDims(1).value_or(Dims(2));
    const Dim batch = x.size() == 2 ? x[0] : Dim{};
    const Dim out_c = w.size() == 2 ? w[0] : Dim{};
    if (packed_out) {
      s.SetOutput(ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, {batch, WordsDim(out_c)});
    } else {
      s.SetOutput(ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, {batch, out_c});
    }
  }

  explicit BinaryDense(const OrtKernelInfo* info)
      : channels_in_(ReadChannelsIn(Attributes(info))),
        layer_(info, [this](const TensorIn& w, Isa isa) {
          return PrepareWeights(w, channels_in_, NibbleKernelFor(isa));
        }) {}

  // layer_ holds a callback into this object: never copied or moved.
  BinaryDense(const BinaryDense&) = delete;
  BinaryDense& operator=(const BinaryDense&) = delete;

  void Compute(Ort::KernelContext& ctx) const {
    layer_.WithInputs(ctx, [&](const TensorIn& x, const PackedMatrix& w, const OutputParams& params,
                               const std::optional<TensorIn>& residual) { Run(ctx, x, w, params, residual); });
  }

 private:
  void Run(Ort::KernelContext& ctx, const TensorIn& x, const PackedMatrix& w, const OutputParams& params,
           const std::optional<TensorIn>& residual) const {
    CheckRank(x, "input (input 0)", 2);
    const int64_t batch = x.shape[0];
    const int64_t words = WordsFor(channels_in_);
    if (x.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
      Check(x.shape[1] == channels_in_, "float input (input 0) shape ", ShapeStr(x.shape), " has ", x.shape[1],
            " channels but channels_in=", channels_in_);
    } else {
      Check(x.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, "input (input 0) must be float [N,K] or packed int32 ",
            "[N,words], got ", TypeName(x.type));
      Check(x.shape[1] == words, "packed input (input 0) shape ", ShapeStr(x.shape), " has ", x.shape[1],
            " words per row but channels_in=", channels_in_, " needs ", words);
    }
    // The GEMM reads rows of `words` words: packed input as it is, float input packed first.
    const bool float_in = x.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
    std::vector<Word> packed;
    if (float_in) {
      packed.resize(static_cast<size_t>(CheckedProduct({batch, words}, "packed input")));
      for (int64_t n = 0; n < batch; ++n) {
        // A row of [N, K] is one pixel whose K channels are contiguous (pixel count 1).
        PackChannels(x.As<float>() + n * channels_in_, 1, 0, channels_in_, 0, 1, packed.data() + n * words, words, 0);
      }
    }
    const Word* rows = float_in ? packed.data() : x.As<Word>();
    // With a nibble kernel (NibbleKernelFor) and rows enough to fill its tiles, the rows in its form: the batch's
    // weights stream once per group of rows either way, and the nibble form doubles their bytes (batch 1 keeps
    // the words).
    const NibbleKernel* const nibbles = batch >= kNibbleBatch && !w.nibble_panels.empty() ? layer_.nibbles() : nullptr;
    std::vector<uint8_t> nibble_rows;
    if (nibbles) {
      nibble_rows.resize(static_cast<size_t>(CheckedProduct({batch, NibblePositions(words)}, "packed input")));
      nibbles->rows(rows, words, 1, batch, words, nibble_rows.data());
    }
    const bool packed_out = params.spec().mode == OutputMode::kPacked;
    const int64_t out_c = w.out_channels;
    const std::vector<int64_t> out_shape{batch, packed_out ? WordsFor(out_c) : out_c};
    CheckedProduct(out_shape, "output");
    Ort::UnownedValue y = ctx.GetOutput(0, out_shape);
    if (batch == 0) return;
    float* y_float = packed_out ? nullptr : y.GetTensorMutableData<float>();
    Word* y_packed = packed_out ? reinterpret_cast<Word*>(y.GetTensorMutableData<int32_t>()) : nullptr;
    const float* residual_float = packed_out ? nullptr : ResidualData(residual, out_shape);
    const int64_t blocks = (out_c + kChannelBlock - 1) / kChannelBlock;
    const int64_t groups = (batch + kRowGroup - 1) / kRowGroup;
    const int32_t full = static_cast<int32_t>(channels_in_);

    ParallelFor(ctx, static_cast<size_t>(groups * blocks), [&](size_t task) {
      const int64_t n_begin = static_cast<int64_t>(task) / blocks * kRowGroup;
      const int64_t rows_in = std::min(kRowGroup, batch - n_begin);
      const int64_t o_begin = (static_cast<int64_t>(task) % blocks) * kChannelBlock;
      const int64_t count = std::min(kChannelBlock, out_c - o_begin);
      int32_t acc[kRowGroup * kChannelBlock];  // [row][channel]
      GemmOutput out{full, kChannelBlock};
      out.dots = acc;
      if (nibbles) {  // o_begin is a multiple of kChannelBlock: whole nibble panels
        nibbles->gemm(nibble_rows.data() + n_begin * NibblePositions(words), rows_in,
                      w.nibble_panels.data() + o_begin / kNibbleColumns * NibblePanelBytes(words), count,
                      NibblePositions(words), out);
      } else {
        layer_.gemm()(rows + n_begin * words, words, 1, rows_in, PanelB(w.panels.data(), o_begin, words), count,
                      words, out);
      }
      for (int64_t r = 0; r < rows_in; ++r) {
        const int64_t n = n_begin + r;
        const int32_t* row_acc = acc + r * kChannelBlock;
        if (packed_out) {
          params.WriteBits(row_acc, o_begin, count, y_packed + n * WordsFor(out_c) + o_begin / kWordBits);
          continue;
        }
        for (int64_t i = 0, at = n * out_c + o_begin; i < count; ++i, ++at) {
          y_float[at] = params.FloatValue(o_begin + i, row_acc[i], residual_float ? residual_float + at : nullptr);
        }
      }
    });
  }

  int64_t channels_in_;
  BinaryLayer<PackedMatrix> layer_;
};

}  // namespace

OpList BinaryDenseOps(Typing typing) { return BinaryLayerOps<BinaryDense>(typing); }

}  // namespace bnn2onnx
