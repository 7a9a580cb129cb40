// The instruction sets the kernels are built for, and the choice among them for this CPU (isa_dispatch.cc).
#pragma once

namespace bnn2onnx {

enum class Isa { kPortable, kAvx2, kAvx512 };

// The best implementation this CPU runs. BNN2ONNX_ISA=portable|avx2 caps the choice (the tests run every kernel
// the machine has against the reference).
Isa SelectIsa();

}  // namespace bnn2onnx
