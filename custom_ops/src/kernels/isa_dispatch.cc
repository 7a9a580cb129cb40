// Which kernel each instruction set uses (isa.h).
#include <cstdlib>
#include <cstring>
#if defined(BNN2ONNX_HAVE_NEON_KERNELS) && !defined(__aarch64__)
#include <sys/auxv.h>
#endif

#include "kernels/bgemm.h"
#include "kernels/bitpacking.h"

namespace bnn2onnx {
namespace {

#if defined(BNN2ONNX_HAVE_NEON_KERNELS)
bool CpuHasNeon() {
#if defined(__aarch64__)
  return true;  // Advanced SIMD is part of the aarch64 base architecture
#else
  constexpr unsigned long kHwcapNeon = 1ul << 12;  // HWCAP_NEON of 32-bit ARM Linux (asm/hwcap.h)
  return (getauxval(AT_HWCAP) & kHwcapNeon) != 0;
#endif
}
#endif

}  // namespace

Isa SelectIsa() {
  const char* cap = std::getenv("BNN2ONNX_ISA");
  const auto capped_at = [cap](const char* name) { return cap != nullptr && std::strcmp(cap, name) == 0; };
  if (capped_at("portable")) return Isa::kPortable;
#if defined(BNN2ONNX_HAVE_X86_KERNELS)
  const bool avx512_allowed = !capped_at("avx2");
  if (avx512_allowed && !capped_at("avx512bw") && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512vpopcntdq")) {
    return Isa::kAvx512;
  }
  if (avx512_allowed && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) {
    return Isa::kAvx512Bw;
  }
  if (__builtin_cpu_supports("avx2")) return Isa::kAvx2;
#endif
#if defined(BNN2ONNX_HAVE_NEON_KERNELS)
  if (CpuHasNeon()) return Isa::kNeon;
#endif
  return Isa::kPortable;
}

BinaryGemmFn BinaryGemmFor(Isa isa) {
  switch (isa) {
#if defined(BNN2ONNX_HAVE_X86_KERNELS)
    case Isa::kAvx512:
      return BinaryGemmAvx512;
    case Isa::kAvx512Bw:
      return BinaryGemmAvx512Bw;
    case Isa::kAvx2:
      return BinaryGemmAvx2;
#endif
#if defined(BNN2ONNX_HAVE_NEON_KERNELS)
    case Isa::kNeon:
      return BinaryGemmNeon;
#endif
    default:
      return BinaryGemmPortable;
  }
}

const NibbleKernel* NibbleKernelFor(Isa isa) {
#if defined(BNN2ONNX_HAVE_X86_KERNELS)
  if (isa == Isa::kAvx2) return &kNibbleKernelAvx2;
#endif
  return (void)isa, nullptr;
}

int64_t ColumnBlockFor(Isa isa) { return NibbleKernelFor(isa) ? 2 * kNibbleColumns : 3 * kPanelLanes; }

// The kernels that have x86 forms and a portable one: the x86 symbols exist only in x86 builds.
#if defined(BNN2ONNX_HAVE_X86_KERNELS)
#define X86_OR_PORTABLE(isa, avx512, avx2, portable) \
  (IsAvx512(isa) ? (avx512) : (isa) == Isa::kAvx2 ? (avx2) : (portable))
#else
#define X86_OR_PORTABLE(isa, avx512, avx2, portable) ((void)(isa), (portable))
#endif

GatherPanelFn GatherPanelFor(Isa isa) {
  return X86_OR_PORTABLE(isa, GatherPanelAvx512, GatherPanelPortable, GatherPanelPortable);
}
PackChannelsFn PackChannelsFor(Isa isa) {
#if defined(BNN2ONNX_HAVE_NEON_KERNELS)
  if (isa == Isa::kNeon) return PackChannelsNeon;
#endif
  return X86_OR_PORTABLE(isa, PackChannelsAvx512, PackChannelsAvx2, PackChannels);
}
LaneBitsToPixelsFn LaneBitsToPixelsFor(Isa isa) {
  return X86_OR_PORTABLE(isa, LaneBitsToPixelsAvx512, LaneBitsToPixelsAvx2, LaneBitsToPixels);
}

#undef X86_OR_PORTABLE

}  // namespace bnn2onnx
