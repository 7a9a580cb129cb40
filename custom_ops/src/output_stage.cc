#include "output_stage.h"

namespace bnn2onnx {

OutputSpec ReadOutputSpec(const Attributes& attributes) {
  OutputSpec spec;
  const int64_t packed = attributes.Int("packed_output", 0);
  Check(packed == 0 || packed == 1, "attribute 'packed_output' must be 0 or 1, got ", packed);
  spec.mode = packed ? OutputMode::kPacked : OutputMode::kFloat;
  const std::string activation = attributes.String("activation", "NONE");
  Check(activation == "NONE" || activation == "RELU", "attribute 'activation' must be \"NONE\" or \"RELU\", got \"",
        activation, "\"");
  spec.relu = activation == "RELU";
  Check(!(spec.relu && packed), "activation=\"RELU\" needs float output (packed_output=0); a packed output's sign ",
        "is decided by its threshold");
  return spec;
}

void CheckDeclaredParamTypes(const OrtKernelInfo* info, const OutputSpec& spec) {
  const bool packed = spec.mode == OutputMode::kPacked;
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

OutputParams::OutputParams(const OutputSpec& spec, const TensorIn& first, const TensorIn& second, int64_t channels)
    : spec_(spec) {
  if (spec.mode == OutputMode::kFloat) {
    CheckVector(first, "multiplier (input 2)", ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, channels);
    CheckVector(second, "bias (input 3)", ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, channels);
    multiplier_.assign(first.As<float>(), first.As<float>() + channels);
    bias_.assign(second.As<float>(), second.As<float>() + channels);
    return;
  }
  CheckVector(first, "threshold (input 2)", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, channels);
  CheckVector(second, "direction (input 3)", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, channels);
  threshold_.assign(first.As<int32_t>(), first.As<int32_t>() + channels);
  direction_.assign(second.As<int32_t>(), second.As<int32_t>() + channels);
  for (int64_t o = 0; o < channels; ++o) {
    Check(direction_[o] >= -1 && direction_[o] <= 1, "direction (input 3) values must be -1, 0 or 1, got ",
          direction_[o], " at channel ", o);
  }
}

}  // namespace bnn2onnx
