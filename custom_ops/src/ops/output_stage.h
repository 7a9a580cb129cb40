// The output transform shared by BinaryConv2D and BinaryDense (docs/ops.md, "Output modes"): turns the
// integer +-1 dot product `acc` of an output channel into either a float or one packed bit.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/bit_convention.h"
#include "ops/op_common.h"

namespace bnn2onnx {

enum class OutputMode { kFloat, kPacked };

struct OutputSpec {
  OutputMode mode = OutputMode::kFloat;
  bool relu = false;
  bool final_relu = false;  // after the post affine map and the residual
};

// Reads `packed_output` (0/1), `activation` and `final_activation` ("NONE"/"RELU"; RELU only with float output).
OutputSpec ReadOutputSpec(const Attributes& attributes);

// Inputs 4 and 5 (post_multiplier, post_bias) and 6 (residual): optional, float output only.
inline constexpr size_t kPostMultiplierInput = 4, kPostBiasInput = 5, kResidualInput = 6;

// Checks the element types the graph declares for inputs 2 and 3, and which optional inputs are given, against
// the mode (at session creation).
void CheckDeclaredParams(const OrtKernelInfo* info, const OutputSpec& spec);

// The residual (input 6) of a run, checked against the float output's shape: its data, or nullptr if absent.
const float* ResidualData(const std::optional<TensorIn>& residual, const std::vector<int64_t>& out_shape);

// Inputs 2 and 3, and 4 and 5 when given, validated for `channels` output channels.
class OutputParams {
 public:
  OutputParams(const OutputSpec& spec, const TensorIn& first, const TensorIn& second,
               const std::optional<TensorIn>& post_multiplier, const std::optional<TensorIn>& post_bias,
               int64_t channels);

  const OutputSpec& spec() const { return spec_; }
  const float* multiplier() const { return multiplier_.data(); }
  const float* bias() const { return bias_.data(); }
  // nullptr when the node has no post_multiplier/post_bias.
  const float* post_multiplier() const { return post_multiplier_.empty() ? nullptr : post_multiplier_.data(); }
  const float* post_bias() const { return post_bias_.empty() ? nullptr : post_bias_.data(); }

  // Float mode: act(multiplier[o] * acc + bias[o]), then post_multiplier[o] * y + post_bias[o] if given, + the
  // residual value if given (nullptr: none), then the final ReLU. Built without FMA contraction so results match
  // the reference's separate multiplies and adds exactly.
  float FloatValue(int64_t o, int32_t acc, const float* residual) const {
    float y = static_cast<float>(acc) * multiplier_[o] + bias_[o];
    if (spec_.relu && y < 0.0f) y = 0.0f;
    if (!post_multiplier_.empty()) y = y * post_multiplier_[o] + post_bias_[o];
    if (residual) y += *residual;
    if (spec_.final_relu && y < 0.0f) y = 0.0f;
    return y;
  }

  // Packed mode, per channel: bit 1 iff acc < below()[o] or acc > above()[o] (the test WriteBits makes).
  const int32_t* below() const { return below_.data(); }
  const int32_t* above() const { return above_.data(); }

  // Packed mode: +1 (bit 0) iff direction[o] * acc >= threshold[o]; otherwise -1 (bit 1). Packs channels
  // [o_begin, o_begin + count) (o_begin a multiple of 32) from acc[0:count] into dst words.
  void WriteBits(const int32_t* acc, int64_t o_begin, int64_t count, Word* dst) const;

 private:
  OutputSpec spec_;
  std::vector<float> multiplier_, bias_, post_multiplier_, post_bias_;
  // Packed mode, the test rewritten without a multiply: bit 1 iff acc < below_[o] or acc > above_[o]. Exact
  // because |acc| <= 2^30 (kMaxAccumulatorBits), far inside int32.
  std::vector<int32_t> below_, above_;
};

}  // namespace bnn2onnx
