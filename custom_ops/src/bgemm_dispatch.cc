#include <cstdlib>
#include <cstring>

#include "bgemm.h"

namespace bnn2onnx {

Isa SelectIsa() {
  const char* forced = std::getenv("BNN2ONNX_ISA");
  if (forced != nullptr && std::strcmp(forced, "portable") == 0) return Isa::kPortable;
#if defined(BNN2ONNX_HAVE_AVX2)
  if (__builtin_cpu_supports("avx2")) return Isa::kAvx2;
#endif
  return Isa::kPortable;
}

BinaryGemmFn BinaryGemmFor(Isa isa) {
#if defined(BNN2ONNX_HAVE_AVX2)
  if (isa == Isa::kAvx2) return BinaryGemm2x4Avx2;
#endif
  (void)isa;
  return BinaryGemmPortable;
}

}  // namespace bnn2onnx
