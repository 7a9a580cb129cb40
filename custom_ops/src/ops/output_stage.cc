#include "ops/output_stage.h"

#include <limits>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace bnn2onnx {

namespace {

// Whether the activation attribute `name` ("NONE" or "RELU") asks for a ReLU; only float output has one.
bool ReadRelu(const Attributes& attributes, const char* name, bool packed) {
  const std::string activation = attributes.String(name, "NONE");
  Check(activation == "NONE" || activation == "RELU", "attribute '", name, "' must be \"NONE\" or \"RELU\", got \"",
        activation, "\"");
  Check(!(activation == "RELU" && packed), name, "=\"RELU\" needs float output (packed_output=0); a packed ",
        "output's sign is decided by its threshold");
  return activation == "RELU";
}

}  // namespace

OutputSpec ReadOutputSpec(const Attributes& attributes) {
  OutputSpec spec;
  const int64_t packed = attributes.Int("packed_output", 0);
  Check(packed == 0 || packed == 1, "attribute 'packed_output' must be 0 or 1, got ", packed);
  spec.mode = packed ? OutputMode::kPacked : OutputMode::kFloat;
  spec.relu = ReadRelu(attributes, "activation", packed);
  spec.final_relu = ReadRelu(attributes, "final_activation", packed);
  return spec;
}

void CheckDeclaredParams(const OrtKernelInfo* info, const OutputSpec& spec) {
  const bool packed = spec.mode == OutputMode::kPacked;
  const bool post_multiplier = HasInput(info, kPostMultiplierInput), post_bias = HasInput(info, kPostBiasInput);
  const bool residual = HasInput(info, kResidualInput);
  Check(!packed || !(post_multiplier || post_bias || residual), "post_multiplier, post_bias and residual (inputs ",
        "4-6) need float output (packed_output=0)");
  Check(post_multiplier == post_bias, "post_multiplier (input 4) and post_bias (input 5) are given together or ",
        "not at all");
  // Inputs 4-6 are float in the op schema, which onnxruntime enforces.
  const ONNXTensorElementDataType expected =
      packed ? ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  const char* names[2] = {packed ? "threshold (input 2)" : "multiplier (input 2)",
                          packed ? "direction (input 3)" : "bias (input 3)"};
  for (size_t i = 0; i < 2; ++i) {
    if (const auto type = DeclaredInputType(info, 2 + i)) {
      Check(*type == expected, names[i], " must be ", TypeName(expected), " when packed_output=", packed ? 1 : 0,
            ", got ", TypeName(*type));
    }
  }
}

const float* ResidualData(const std::optional<TensorIn>& residual, const std::vector<int64_t>& out_shape) {
  if (!residual) return nullptr;
  CheckType(*residual, "residual (input 6)", ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT);
  Check(residual->shape == out_shape, "residual (input 6) shape ", ShapeStr(residual->shape),
        " differs from the output shape ", ShapeStr(out_shape));
  return residual->As<float>();
}

OutputParams::OutputParams(const OutputSpec& spec, const TensorIn& first, const TensorIn& second,
                           const std::optional<TensorIn>& post_multiplier, const std::optional<TensorIn>& post_bias,
                           int64_t channels)
    : spec_(spec) {
  // Which of inputs 4 and 5 a node gives, against its mode, was checked at session creation (CheckDeclaredParams).
  const auto read = [channels](const TensorIn& t, const char* what, std::vector<float>& values) {
    CheckVector(t, what, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, channels);
    values.assign(t.As<float>(), t.As<float>() + channels);
  };
  if (spec.mode == OutputMode::kFloat) {
    read(first, "multiplier (input 2)", multiplier_);
    read(second, "bias (input 3)", bias_);
    if (post_multiplier) {
      read(*post_multiplier, "post_multiplier (input 4)", post_multiplier_);
      read(*post_bias, "post_bias (input 5)", post_bias_);
    }
    return;
  }
  CheckVector(first, "threshold (input 2)", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, channels);
  CheckVector(second, "direction (input 3)", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, channels);
  const int32_t* threshold = first.As<int32_t>();
  const int32_t* direction = second.As<int32_t>();
  below_.resize(channels);
  above_.resize(channels);
  constexpr int32_t kNever = std::numeric_limits<int32_t>::max();  // acc > kNever and acc < -kNever never hold
  for (int64_t o = 0; o < channels; ++o) {
    Check(direction[o] >= -1 && direction[o] <= 1, "direction (input 3) values must be -1, 0 or 1, got ",
          direction[o], " at channel ", o);
    below_[o] = -kNever, above_[o] = kNever;
    if (direction[o] == 1) below_[o] = threshold[o];                              // acc < t
    if (direction[o] == -1 && threshold[o] > -kNever) above_[o] = -threshold[o];  // -acc < t
    if (direction[o] == 0 && threshold[o] > 0) below_[o] = kNever;                // 0 < t: always
  }
}

void OutputParams::WriteBits(const int32_t* acc, int64_t o_begin, int64_t count, Word* dst) const {
  const int32_t* below = below_.data() + o_begin;
  const int32_t* above = above_.data() + o_begin;
  for (int64_t i = 0; i < count; i += kWordBits) {
    const int64_t bits = count - i < kWordBits ? count - i : kWordBits;
    Word word = 0;
    int64_t b = 0;
#if defined(__SSE2__)
    // Four channels per compare and movemask (SSE2 is in every x86-64 CPU); the rest one by one below.
    for (; b + 4 <= bits; b += 4) {
      const int64_t c = i + b;
      const __m128i value = _mm_loadu_si128(reinterpret_cast<const __m128i*>(acc + c));
      const __m128i low = _mm_cmplt_epi32(value, _mm_loadu_si128(reinterpret_cast<const __m128i*>(below + c)));
      const __m128i high = _mm_cmpgt_epi32(value, _mm_loadu_si128(reinterpret_cast<const __m128i*>(above + c)));
      word |= static_cast<Word>(_mm_movemask_ps(_mm_castsi128_ps(_mm_or_si128(low, high)))) << b;
    }
#endif
    for (; b < bits; ++b) {
      const int64_t c = i + b;
      word |= static_cast<Word>(acc[c] < below[c] || acc[c] > above[c]) << b;
    }
    dst[i / kWordBits] = word;
  }
}

}  // namespace bnn2onnx
