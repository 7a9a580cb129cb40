// BinaryMaxPool2D (docs/ops.md): max-pooling of +-1 values on packed data. The max of +-1 values is -1 only
// when every value is -1, so with bit 1 = -1 the pooled word is the AND of the window's words.
#include <algorithm>

#include "kernels/bitpacking.h"
#include "ops/op_common.h"
#include "ops/ops.h"

namespace bnn2onnx {
namespace {

// The taps [begin, end) of a window along one axis that read inside the input: tap k reads start + k * dilation,
// inside when in [0, size). The loops visit only these, so a window over an empty or mostly padded input costs
// nothing.
struct TapRange {
  int64_t begin = 0, end = 0;
};

TapRange TapsInside(int64_t start, int64_t dilation, int64_t size, int64_t kernel) {
  const auto taps_before = [dilation](int64_t distance) { return (distance + dilation - 1) / dilation; };
  TapRange r;
  r.begin = start < 0 ? std::min(kernel, taps_before(-start)) : 0;
  r.end = start < size ? std::min(kernel, taps_before(size - start)) : 0;
  r.end = std::max(r.begin, r.end);
  return r;
}

class BinaryMaxPool2D {
 public:
  static constexpr const char* kName = "BinaryMaxPool2D";
  static constexpr std::array<ONNXTensorElementDataType, 1> kInputTypes = {ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32};
  static constexpr std::array<ONNXTensorElementDataType, 1> kOutputTypes = {ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32};

  static void InferShape(const ShapeInference& s) {
    Dims x = s.InputDims(0).value_or(Dims(4));
    if (x.size() != 4) x = Dims(4);
    const std::vector<int64_t> kernel = s.Ints("kernel_shape").value_or(std::vector<int64_t>{});
    const bool known = kernel.size() == 2;
    const Dim kh = known ? Dim{kernel[0], {}} : Dim{}, kw = known ? Dim{kernel[1], {}} : Dim{};
    s.SetOutput(ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32,
                {x[0], WindowOutputDim(s, x[1], 0, kh), WindowOutputDim(s, x[2], 1, kw), x[3]});
  }

  explicit BinaryMaxPool2D(const OrtKernelInfo* info) {
    const Attributes attributes(info);
    channels_ = attributes.RequiredInt("channels");
    Check(channels_ >= 1 && channels_ <= kMaxDim, "attribute 'channels' must be in [1, ", kMaxDim, "], got ",
          channels_);
    Check(attributes.OptionalInts("kernel_shape").has_value(), "required attribute 'kernel_shape' is missing");
    kernel_ = PairAttribute(attributes, "kernel_shape", {}, 1);
    strides_ = PairAttribute(attributes, "strides", {1, 1}, 1);
    dilations_ = PairAttribute(attributes, "dilations", {1, 1}, 1);
    pads_ = attributes.Ints("pads", {0, 0, 0, 0});
    Check(pads_.size() == 4, "attribute 'pads' must have 4 values [top, left, bottom, right], got ",
          ShapeStr(pads_));
    for (size_t i = 0; i < 4; ++i) {
      // As ONNX MaxPool requires: a pad smaller than the kernel keeps every window on real input.
      Check(pads_[i] >= 0 && pads_[i] < kernel_[i % 2], "attribute 'pads' ", ShapeStr(pads_),
            " must be >= 0 and smaller than kernel_shape ", ShapeStr(kernel_));
    }
    Check(attributes.Int("ceil_mode", 0) == 0, "ceil_mode=1 is not supported; pad explicitly instead");
  }

  void Compute(Ort::KernelContext& ctx) const {
    const TensorIn x = ReadInput(ctx, 0);
    CheckRank(x, "input", 4);
    CheckedProduct(x.shape, "input");
    const int64_t batch = x.shape[0], height = x.shape[1], width = x.shape[2], words = x.shape[3];
    Check(words == WordsFor(channels_), "input shape ", ShapeStr(x.shape), " has ", words,
          " words per pixel but channels=", channels_, " needs ", WordsFor(channels_));
    const int64_t out_h =
        SlidingWindowSize(height, pads_[0], pads_[2], kernel_[0], dilations_[0], strides_[0], "height");
    const int64_t out_w =
        SlidingWindowSize(width, pads_[1], pads_[3], kernel_[1], dilations_[1], strides_[1], "width");
    const std::vector<int64_t> out_shape{batch, out_h, out_w, words};
    CheckedProduct(out_shape, "output");
    Word* y = reinterpret_cast<Word*>(ctx.GetOutput(0, out_shape).GetTensorMutableData<int32_t>());
    const Word* in = x.As<Word>();
    ParallelFor(ctx, static_cast<size_t>(CheckedProduct({batch, out_h}, "output rows")), [&](size_t task) {
      const int64_t n = static_cast<int64_t>(task) / out_h;
      const int64_t oh = static_cast<int64_t>(task) % out_h;
      const int64_t top = oh * strides_[0] - pads_[0];
      const TapRange rows = TapsInside(top, dilations_[0], height, kernel_[0]);
      for (int64_t ow = 0; ow < out_w; ++ow) {
        Word* dst = y + ((n * out_h + oh) * out_w + ow) * words;
        std::fill(dst, dst + words, ~Word{0});
        const int64_t left = ow * strides_[1] - pads_[1];
        const TapRange columns = TapsInside(left, dilations_[1], width, kernel_[1]);
        for (int64_t kh = rows.begin; kh < rows.end; ++kh) {
          const int64_t ih = top + kh * dilations_[0];
          for (int64_t kw = columns.begin; kw < columns.end; ++kw) {
            const Word* src = in + ((n * height + ih) * width + left + kw * dilations_[1]) * words;
            for (int64_t w = 0; w < words; ++w) dst[w] &= src[w];
          }
        }
        // A window that saw no input (dilated, or over an empty input) stays all -1, like max over nothing = -inf.
        dst[words - 1] &= ValidBits(channels_, words - 1);
      }
    });
  }

 private:
  int64_t channels_ = 0;
  std::vector<int64_t> kernel_, strides_, dilations_, pads_;
};

}  // namespace

OrtCustomOp* BinaryMaxPool2DOp() {
  static CustomOp<BinaryMaxPool2D> op;
  return &op;
}

}  // namespace bnn2onnx
