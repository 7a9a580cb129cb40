"""The kernel tiers of x86 CPUs and which of them a BNN2ONNX_ISA cap runs here, by the rule isa_dispatch.cc
follows (docs/ops.md, "Runtime requirements"): the best tier the CPU has, at most the cap."""

from __future__ import annotations

import platform
from pathlib import Path

# Best first, with the CPU flags (as /proc/cpuinfo names them) each needs.
TIERS = {"avx512": {"avx512f", "avx512_vpopcntdq"}, "avx512bw": {"avx512f", "avx512bw"}, "avx2": {"avx2"},
         "portable": set()}


def cpu_flags() -> set[str]:
    if platform.machine() not in ("x86_64", "AMD64"):
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
