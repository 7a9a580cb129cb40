// The output transform shared by BinaryConv2D and BinaryDense (docs/ops.md, "Output modes"): turns the
// integer +-1 dot product `acc` of an output channel into either a float or one packed bit.
#pragma once

#include <cstdint>
#include <vector>

#include "bit_convention.h"
#include "op_common.h"

namespace bnn2onnx {

enum class OutputMode { kFloat, kPacked };

struct OutputSpec {
  OutputMode mode = OutputMode::kFloat;
  bool relu = false;
};

// Reads `packed_output` (0/1) and `activation` ("NONE"/"RELU"; RELU only with float output).
OutputSpec ReadOutputSpec(const Attributes& attributes);

// Checks the element types the graph declares for inputs 2 and 3 against the mode (at session creation).
void CheckDeclaredParamTypes(const OrtKernelInfo* info, const OutputSpec& spec);

// Inputs 2 and 3, validated for `channels` output channels.
class OutputParams {
 public:
  OutputParams(const OutputSpec& spec, const TensorIn& first, const TensorIn& second, int64_t channels);

  const OutputSpec& spec() const { return spec_; }
  const float* multiplier() const { return multiplier_.data(); }
  const float* bias() const { return bias_.data(); }

  // Float mode: act(multiplier[o] * acc + bias[o]). Built without FMA contraction so results match the
  // reference's separate multiply and add exactly.
  float FloatValue(int64_t o, int32_t acc) const {
    const float y = static_cast<float>(acc) * multiplier_[o] + bias_[o];
    return spec_.relu && y < 0.0f ? 0.0f : y;
  }

  // Packed mode: +1 (bit 0) iff direction[o] * acc >= threshold[o]; otherwise -1 (bit 1). Packs channels
  // [o_begin, o_begin + count) (o_begin a multiple of 32) from acc[0:count] into dst words.
  void WriteBits(const int32_t* acc, int64_t o_begin, int64_t count, Word* dst) const;

 private:
  OutputSpec spec_;
  std::vector<float> multiplier_, bias_;
  // Packed mode, the test rewritten without a multiply: bit 1 iff acc < below_[o] or acc > above_[o]. Exact
  // because |acc| <= 2^30 (kMaxAccumulatorBits), far inside int32.
  std::vector<int32_t> below_, above_;
};

}  // namespace bnn2onnx
