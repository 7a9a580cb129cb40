// Which kernel each instruction set uses (isa.h).
#include <cstdlib>
#include <cstring>

#include "bgemm.h"
#include "bitpacking.h"

namespace bnn2onnx {

Isa SelectIsa() {
  const char* cap = std::getenv("BNN2ONNX_ISA");
  const bool portable_only = cap != nullptr && std::strcmp(cap, "portable") == 0;
  const bool avx2_at_most = cap != nullptr && std::strcmp(cap, "avx2") == 0;
  if (portable_only) return Isa::kPortable;
#if defined(BNN2ONNX_HAVE_X86_KERNELS)
  if (!avx2_at_most && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq")) {
    return Isa::kAvx512;
  }
  if (__builtin_cpu_supports("avx2")) return Isa::kAvx2;
#else
  (void)avx2_at_most;
#endif
  return Isa::kPortable;
}

BinaryGemmFn BinaryGemmFor(Isa isa) {
  switch (isa) {
#if defined(BNN2ONNX_HAVE_X86_KERNELS)
    case Isa::kAvx512:
      return BinaryGemmAvx512;
    case Isa::kAvx2:
      return BinaryGemmAvx2;
#endif
    default:
      return BinaryGemmPortable;
  }
}

// The kernels that have an AVX-512 form and a portable one: the AVX-512 symbols exist only in x86 builds.
#if defined(BNN2ONNX_HAVE_X86_KERNELS)
#define AVX512_OR_PORTABLE(isa, avx512, portable) ((isa) == Isa::kAvx512 ? (avx512) : (portable))
#else
#define AVX512_OR_PORTABLE(isa, avx512, portable) ((void)(isa), (portable))
#endif

GatherPanelFn GatherPanelFor(Isa isa) { return AVX512_OR_PORTABLE(isa, GatherPanelAvx512, GatherPanelPortable); }
PackChannelsFn PackChannelsFor(Isa isa) { return AVX512_OR_PORTABLE(isa, PackChannelsAvx512, PackChannels); }
LaneBitsToPixelsFn LaneBitsToPixelsFor(Isa isa) {
  return AVX512_OR_PORTABLE(isa, LaneBitsToPixelsAvx512, LaneBitsToPixels);
}

#undef AVX512_OR_PORTABLE

}  // namespace bnn2onnx
