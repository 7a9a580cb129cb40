"""The kernel tiers of this architecture and which of them a BNN2ONNX_ISA cap runs here, by the rule
isa_dispatch.cc follows (docs/ops.md, "Runtime requirements"): the best tier the CPU has, at most the cap.
x86-64: AVX-512 (with or without vpopcntd), AVX2, portable; ARM (aarch64, armv7): NEON, portable."""

from __future__ import annotations

import platform
import struct
from pathlib import Path

X86 = platform.machine() in ("x86_64", "AMD64")
ARM = platform.machine().startswith(("aarch64", "arm"))
# Best first, with the CPU features each needs (x86: as /proc/cpuinfo names them; ARM: "neon").
TIERS = ({"avx512": {"avx512f", "avx512_vpopcntdq"}, "avx512bw": {"avx512f", "avx512bw"}, "avx2": {"avx2"},
          "portable": set()} if X86 else {"neon": {"neon"}, "portable": set()} if ARM else {"portable": set()})
# Besides the default (the best tier the CPU has), the runs the op tests compare with it: each lower tier, and
# BinaryConv2D's implicit GEMM (the AVX-512 form of the conv) with the other kernels, so that its layout is
# checked on CPUs without AVX-512 too.
CAPPED_KERNELS = ((("avx512bw", False), ("avx2", False), ("portable", False), ("avx2", True), ("portable", True))
                  if X86 else (("portable", False), ("neon", True), ("portable", True)))

AT_HWCAP = 16
HWCAP_NEON = 1 << 12  # 32-bit ARM Linux (asm/hwcap.h)


def _arm_features() -> set[str]:
    """aarch64 always has NEON (Advanced SIMD); armv7 says so in its auxiliary vector's HWCAP (which qemu-user
    emulates; /proc/cpuinfo would be the host's)."""
    if platform.machine().startswith("aarch64"):
        return {"neon"}
    word = struct.calcsize("L")
    auxv = Path("/proc/self/auxv").read_bytes()
    pairs = struct.unpack(f"{len(auxv) // word}L", auxv[: len(auxv) // word * word])
    hwcap = dict(zip(pairs[::2], pairs[1::2])).get(AT_HWCAP, 0)
    return {"neon"} if hwcap & HWCAP_NEON else set()


def cpu_flags() -> set[str]:
    if ARM:
        return _arm_features()
    if not X86:
        return set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def tier_for(cap: str | None) -> str:
    """The tier that runs with BNN2ONNX_ISA=cap (None: no cap)."""
    flags = cpu_flags()
    names = list(TIERS)
    allowed = names if cap is None else names[names.index(cap):]
    return next(name for name in allowed if TIERS[name] <= flags)


def tiers_not_on_this_cpu() -> list[str]:
    return [name for name, needs in TIERS.items() if not needs <= cpu_flags()]
