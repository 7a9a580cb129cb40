#include <cstdlib>
#include <cstring>

#include "xor_popcount.h"

namespace bnn2onnx {

Isa SelectIsa() {
  const char* forced = std::getenv("BNN2ONNX_ISA");
  if (forced != nullptr && std::strcmp(forced, "portable") == 0) return Isa::kPortable;
#if defined(BNN2ONNX_HAVE_AVX2)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt")) return Isa::kAvx2;
#endif
  return Isa::kPortable;
}

XorPopcountFn XorPopcountFor(Isa isa) {
#if defined(BNN2ONNX_HAVE_AVX2)
  if (isa == Isa::kAvx2) return XorPopcountAvx2;
#endif
  (void)isa;
  return XorPopcountPortable;
}

}  // namespace bnn2onnx
