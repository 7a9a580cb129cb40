// What BinaryConv2D and BinaryDense share around their arithmetic: the output mode, the chosen binary GEMM
// kernel, the check of the input's element type, and weights and output parameters prepared once at session
// creation when they are constant initializers (and on every run when they are runtime inputs).
#pragma once

#include <functional>
#include <optional>

#include "ops/op_common.h"
#include "ops/output_stage.h"
#include "kernels/bgemm.h"

namespace bnn2onnx {

// x (float or packed int32), packed weights, two per-channel vectors whose type depends on the output mode, and
// the float output's optional post_multiplier, post_bias and residual (output_stage.h).
inline constexpr std::array<ONNXTensorElementDataType, 7> kBinaryLayerInputTypes = {
    ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32,
    ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED, ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED,
    ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT,     ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT,
    ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT};
inline constexpr size_t kBinaryLayerRequiredInputs = 4;

// The op as onnxruntime is offered it (op_common.h, Typing). Concrete: x float or packed int32, times the output
// mode: float (p, q and output 0 float) or packed (int32).
template <class Kernel>
OpList BinaryLayerOps(Typing typing) {
  static CustomOp<Kernel> dynamic;
  if (typing == Typing::kDynamic) return {&dynamic};
  static auto variants = [] {
    constexpr ONNXTensorElementDataType kFloat = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
    constexpr ONNXTensorElementDataType kInt32 = ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
    std::vector<CustomOp<Kernel>> ops;
    for (const auto x : {kFloat, kInt32}) {
      for (const auto mode : {kFloat, kInt32}) {
        auto inputs = Kernel::kInputTypes;
        auto outputs = Kernel::kOutputTypes;
        inputs[0] = x, inputs[2] = inputs[3] = mode, outputs[0] = mode;
        ops.emplace_back(inputs, outputs);
      }
    }
    return ops;
  }();
  OpList list;
  for (auto& op : variants) list.push_back(&op);
  return list;
}

// Points a GEMM's float store at element `at` of the output y (and of the residual, when given) with the
// per-channel vectors from output channel o_begin on.
inline void StoreFloatsAt(GemmOutput& out, const OutputParams& params, float* y, const float* residual, int64_t at,
                          int64_t o_begin) {
  out.floats = y + at;
  out.residual = residual ? residual + at : nullptr;
  out.multiplier = params.multiplier() + o_begin, out.bias = params.bias() + o_begin;
  out.relu = params.spec().relu, out.final_relu = params.spec().final_relu;
  if (params.post_multiplier()) {
    out.post_multiplier = params.post_multiplier() + o_begin, out.post_bias = params.post_bias() + o_begin;
  }
}

// Weights is the op's prepared form of input 1 for the chosen kernel's instruction set; it has an `out_channels`
// member.
template <class Weights>
class BinaryLayer {
 public:
  using Prepare = std::function<Weights(const TensorIn&, Isa)>;

  BinaryLayer(const OrtKernelInfo* info, Prepare prepare)
      : spec_(ReadOutputSpec(Attributes(info))), isa_(SelectIsa()), gemm_(BinaryGemmFor(isa_)),
        nibbles_(NibbleKernelFor(isa_)), prepare_(std::move(prepare)) {
    CheckDeclaredParams(info, spec_);
    if (const auto x_type = DeclaredInputType(info, 0)) {
      Check(*x_type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || *x_type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32,
            "input (input 0) must be float or packed int32, got ", TypeName(*x_type));
    }
    if (const auto w = ConstantInput(info, 1)) weights_ = prepare_(*w, isa_);
    const auto first = ConstantInput(info, 2), second = ConstantInput(info, 3);
    const bool post = HasInput(info, kPostMultiplierInput);
    const auto post_multiplier = post ? ConstantInput(info, kPostMultiplierInput) : std::nullopt;
    const auto post_bias = post ? ConstantInput(info, kPostBiasInput) : std::nullopt;
    if (weights_ && first && second && (!post || (post_multiplier && post_bias))) {
      params_.emplace(spec_, *first, *second, post_multiplier, post_bias, weights_->out_channels);
    }
  }

  // Calls run(x, weights, params, residual) with this run's inputs and the prepared (or freshly prepared) rest.
  template <class F>
  void WithInputs(Ort::KernelContext& ctx, F&& run) const {
    const TensorIn x = ReadInput(ctx, 0);
    std::optional<Weights> runtime_weights;
    if (!weights_) runtime_weights = prepare_(ReadInput(ctx, 1), isa_);
    const Weights& weights = weights_ ? *weights_ : *runtime_weights;
    std::optional<OutputParams> runtime_params;
    if (!params_) {
      runtime_params.emplace(spec_, ReadInput(ctx, 2), ReadInput(ctx, 3), OptionalInput(ctx, kPostMultiplierInput),
                             OptionalInput(ctx, kPostBiasInput), weights.out_channels);
    }
    run(x, weights, params_ ? *params_ : *runtime_params, OptionalInput(ctx, kResidualInput));
  }

  const OutputSpec& spec() const { return spec_; }
  Isa isa() const { return isa_; }
  // Whether the weights are a constant initializer (prepared once), not a runtime input.
  bool constant_weights() const { return weights_.has_value(); }
  BinaryGemmFn gemm() const { return gemm_; }
  // The nibble kernel, where the instruction set has one (NibbleKernelFor).
  const NibbleKernel* nibbles() const { return nibbles_; }

 private:
  OutputSpec spec_;
  Isa isa_;
  BinaryGemmFn gemm_;
  const NibbleKernel* nibbles_;
  Prepare prepare_;
  std::optional<Weights> weights_;
  std::optional<OutputParams> params_;
};

}  // namespace bnn2onnx
