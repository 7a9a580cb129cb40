// The instruction sets the kernels are built for, and the choice among them for this CPU (isa_dispatch.cc).
#pragma once

namespace bnn2onnx {

// kAvx512: AVX512F with VPOPCNTDQ (Ice Lake and later, Zen 4); kAvx512Bw: AVX512F with AVX512BW but no
// VPOPCNTDQ (Skylake-SP, Cascade Lake): the same kernels but for the GEMM's bit count. kNeon: ARM Advanced SIMD
// (every aarch64 CPU; armv7 CPUs that report it).
enum class Isa { kPortable, kAvx2, kAvx512Bw, kAvx512, kNeon };

inline bool IsAvx512(Isa isa) { return isa == Isa::kAvx512 || isa == Isa::kAvx512Bw; }

// The best implementation this CPU runs. BNN2ONNX_ISA=portable|avx2|avx512bw caps the choice (the tests run
// every kernel the machine has against the reference); on ARM, BNN2ONNX_ISA=portable.
Isa SelectIsa();

}  // namespace bnn2onnx
