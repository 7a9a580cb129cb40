// BitPack and BitUnpack (docs/ops.md): float [N, C, spatial...] <-> packed int32 [N, spatial..., ceil(C/32)].
#include <algorithm>

#include "kernels/bitpacking.h"
#include "ops/op_common.h"
#include "ops/ops.h"

namespace bnn2onnx {
namespace {

// Pixels per task: enough work to amortise scheduling, few enough to split small images across threads.
constexpr int64_t kPixelsPerTask = 1024;

struct Layout {
  int64_t batch = 0, channels = 0, pixels = 0;
};

// Splits [batch x pixels] into tasks of at most kPixelsPerTask pixels of one image and runs body on each (none
// when there are no pixels).
template <class F>
void ForPixelChunks(Ort::KernelContext& ctx, const Layout& l, F&& body) {
  const int64_t chunks = (l.pixels + kPixelsPerTask - 1) / kPixelsPerTask;
  ParallelFor(ctx, static_cast<size_t>(l.batch * chunks), [&](size_t task) {
    const int64_t n = static_cast<int64_t>(task) / chunks;
    const int64_t p_begin = (static_cast<int64_t>(task) % chunks) * kPixelsPerTask;
    body(n, p_begin, std::min(l.pixels, p_begin + kPixelsPerTask));
  });
}

class BitPack {
 public:
  static constexpr const char* kName = "BitPack";
  static constexpr std::array<ONNXTensorElementDataType, 1> kInputTypes = {ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT};
  static constexpr std::array<ONNXTensorElementDataType, 1> kOutputTypes = {ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32};

  // [N, C, spatial...] -> [N, spatial..., words(C)]
  static void InferShape(const ShapeInference& s) {
    const std::optional<Dims> x = s.InputDims(0);
    if (!x || x->size() < 2) return;  // rank unknown: the declared output type is all we can say
    Dims out{(*x)[0]};
    out.insert(out.end(), x->begin() + 2, x->end());
    out.push_back(WordsDim((*x)[1]));
    s.SetOutput(kOutputTypes[0], out);
  }

  explicit BitPack(const OrtKernelInfo*) : pack_channels_(PackChannelsFor(SelectIsa())) {}

  void Compute(Ort::KernelContext& ctx) const {
    const TensorIn x = ReadInput(ctx, 0);
    Check(x.shape.size() >= 2, "input must have rank >= 2 ([N, C, spatial...]), got shape ", ShapeStr(x.shape));
    CheckedProduct(x.shape, "input");
    const Layout l{x.shape[0], x.shape[1],
                   CheckedProduct(std::vector<int64_t>(x.shape.begin() + 2, x.shape.end()), "input")};
    const int64_t words = WordsFor(l.channels);
    std::vector<int64_t> out_shape{l.batch};
    out_shape.insert(out_shape.end(), x.shape.begin() + 2, x.shape.end());
    out_shape.push_back(words);
    const int64_t out_size = CheckedProduct(out_shape, "output");
    Word* y = reinterpret_cast<Word*>(ctx.GetOutput(0, out_shape).GetTensorMutableData<int32_t>());
    if (out_size == 0) return;
    const float* data = x.As<float>();
    ForPixelChunks(ctx, l, [&](int64_t n, int64_t p_begin, int64_t p_end) {
      pack_channels_(data + n * l.channels * l.pixels, l.pixels, 0, l.channels, p_begin, p_end,
                     y + n * l.pixels * words, words, 0);
    });
  }

 private:
  PackChannelsFn pack_channels_;
};

class BitUnpack {
 public:
  static constexpr const char* kName = "BitUnpack";
  static constexpr std::array<ONNXTensorElementDataType, 1> kInputTypes = {ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32};
  static constexpr std::array<ONNXTensorElementDataType, 1> kOutputTypes = {ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT};

  // [N, spatial..., words] -> [N, channels, spatial...]
  static void InferShape(const ShapeInference& s) {
    const std::optional<Dims> x = s.InputDims(0);
    const Dim channels = s.Int("channels") ? Dim{*s.Int("channels"), {}} : Dim{};
    if (!x || x->size() < 2) return;  // rank unknown: the declared output type is all we can say
    Dims out{(*x)[0], channels};
    out.insert(out.end(), x->begin() + 1, x->end() - 1);
    s.SetOutput(kOutputTypes[0], out);
  }

  explicit BitUnpack(const OrtKernelInfo* info) : channels_(Attributes(info).RequiredInt("channels")) {
    Check(channels_ >= 0 && channels_ <= kMaxDim, "attribute 'channels' must be in [0, ", kMaxDim, "], got ",
          channels_);
  }

  void Compute(Ort::KernelContext& ctx) const {
    const TensorIn x = ReadInput(ctx, 0);
    Check(x.shape.size() >= 2, "input must have rank >= 2 ([N, spatial..., words]), got shape ",
          ShapeStr(x.shape));
    CheckedProduct(x.shape, "input");
    const int64_t words = x.shape.back();
    Check(words == WordsFor(channels_), "input shape ", ShapeStr(x.shape), " has ", words,
          " words per pixel but channels=", channels_, " needs ", WordsFor(channels_));
    const Layout l{x.shape[0], channels_,
                   CheckedProduct(std::vector<int64_t>(x.shape.begin() + 1, x.shape.end() - 1), "input")};
    std::vector<int64_t> out_shape{l.batch, channels_};
    out_shape.insert(out_shape.end(), x.shape.begin() + 1, x.shape.end() - 1);
    const int64_t out_size = CheckedProduct(out_shape, "output");
    float* y = ctx.GetOutput(0, out_shape).GetTensorMutableData<float>();
    if (out_size == 0) return;
    const Word* data = x.As<Word>();
    ForPixelChunks(ctx, l, [&](int64_t n, int64_t p_begin, int64_t p_end) {
      UnpackChannels(data + n * l.pixels * words, words, channels_, l.pixels, p_begin, p_end,
                     y + n * channels_ * l.pixels);
    });
  }

 private:
  int64_t channels_;
};

}  // namespace

OrtCustomOp* BitPackOp() {
  static CustomOp<BitPack> op;
  return &op;
}

OrtCustomOp* BitUnpackOp() {
  static CustomOp<BitUnpack> op;
  return &op;
}

}  // namespace bnn2onnx
