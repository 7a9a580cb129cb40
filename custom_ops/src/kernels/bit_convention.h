// The packed binary format shared by every op (docs/ops.md, "Bit convention"); defined here once.
//
// - A packed tensor is int32 with the channel axis last, 32 channels per word.
// - Channel c lives in word c / 32, bit c % 32 (least significant bit first).
// - Bit 1 means -1 (the value was < 0); bit 0 means +1 (x >= 0, so 0 and -0.0 map to +1, as larq does).
// - Tail bits (channels >= C in the last word) are 0. Producers guarantee it; consumers may rely on it.
// Kernels never read past the end of a tensor: every read is bounded by the tensor's own element count.
#pragma once

#include <cstdint>

namespace bnn2onnx {

using Word = std::uint32_t;
constexpr std::int64_t kWordBits = 32;

constexpr std::int64_t WordsFor(std::int64_t channels) { return (channels + kWordBits - 1) / kWordBits; }

// Bit that encodes a float value: 1 for negative (-1), 0 otherwise (+1). NaN maps to +1.
inline Word SignBit(float x) { return x < 0.0f ? 1u : 0u; }

}  // namespace bnn2onnx
