// One accessor per op; each op lives in its own op_*.cc file and registry.cc adds them all to the domain.
#pragma once

#include "ops/op_common.h"

namespace bnn2onnx {

OrtCustomOp* BitPackOp();
OrtCustomOp* BitUnpackOp();
// Several inputs of any type: offered as registry.cc's runtime needs (op_common.h, Typing).
OpList BinaryConv2DOps(Typing typing);
OpList BinaryDenseOps(Typing typing);
OrtCustomOp* BinaryMaxPool2DOp();

}  // namespace bnn2onnx
