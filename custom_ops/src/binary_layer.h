// What BinaryConv2D and BinaryDense share around their arithmetic: the output mode, the chosen binary GEMM
// kernel, the check of the input's element type, and weights and output parameters prepared once at session
// creation when they are constant initializers (and on every run when they are runtime inputs).
#pragma once

#include <functional>
#include <optional>

#include "op_common.h"
#include "output_stage.h"
#include "bgemm.h"

namespace bnn2onnx {

// x (float or packed int32), packed weights, and two per-channel vectors whose type depends on the output mode.
inline constexpr std::array<ONNXTensorElementDataType, 4> kBinaryLayerInputTypes = {
    ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32,
    ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED, ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED};

// Weights is the op's prepared form of input 1; it has an `out_channels` member.
template <class Weights>
class BinaryLayer {
 public:
  using Prepare = std::function<Weights(const TensorIn&)>;

  BinaryLayer(const OrtKernelInfo* info, Prepare prepare)
      : spec_(ReadOutputSpec(Attributes(info))), isa_(SelectIsa()), gemm_(BinaryGemmFor(isa_)),
        prepare_(std::move(prepare)) {
    CheckDeclaredParamTypes(info, spec_);
    if (const auto x_type = DeclaredInputType(info, 0)) {
      Check(*x_type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || *x_type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32,
            "input (input 0) must be float or packed int32, got ", TypeName(*x_type));
    }
    if (const auto w = ConstantInput(info, 1)) weights_ = prepare_(*w);
    const auto first = ConstantInput(info, 2), second = ConstantInput(info, 3);
    if (weights_ && first && second) params_.emplace(spec_, *first, *second, weights_->out_channels);
  }

  // Calls run(x, weights, params) with this run's input and the prepared (or freshly prepared) rest.
  template <class F>
  void WithInputs(Ort::KernelContext& ctx, F&& run) const {
    const TensorIn x = ReadInput(ctx, 0);
    std::optional<Weights> runtime_weights;
    if (!weights_) runtime_weights = prepare_(ReadInput(ctx, 1));
    const Weights& weights = weights_ ? *weights_ : *runtime_weights;
    std::optional<OutputParams> runtime_params;
    if (!params_) runtime_params.emplace(spec_, ReadInput(ctx, 2), ReadInput(ctx, 3), weights.out_channels);
    run(x, weights, params_ ? *params_ : *runtime_params);
  }

  Isa isa() const { return isa_; }
  BinaryGemmFn gemm() const { return gemm_; }

 private:
  OutputSpec spec_;
  Isa isa_;
  BinaryGemmFn gemm_;
  Prepare prepare_;
  std::optional<Weights> weights_;
  std::optional<OutputParams> params_;
};

}  // namespace bnn2onnx
