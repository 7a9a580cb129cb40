// One accessor per op; each op lives in its own op_*.cc file and registry.cc adds them all to the domain.
#pragma once

#include <onnxruntime_c_api.h>

namespace bnn2onnx {

const OrtCustomOp* BitPackOp();
const OrtCustomOp* BitUnpackOp();
const OrtCustomOp* BinaryConv2DOp();
const OrtCustomOp* BinaryDenseOp();
const OrtCustomOp* BinaryMaxPool2DOp();

}  // namespace bnn2onnx
