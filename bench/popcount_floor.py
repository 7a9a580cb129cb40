"""The machine's own limit for binary layers, measured in the same rounds as the layers: popcount_probe.c (xor,
popcount and add, registers only) built with the system C compiler for the tier the bnn2onnx kernels run at. A
binary conv or dense of M outputs, N filters and a reduction of K bits has M * N * K / 512 units of 512 bit-pairs:
with AVX-512 VPOPCNTDQ one 512-bit xor/popcount/add triple each (a popcount alone runs 1.5x faster, but every word
needs its xor and its add); at the AVX2 tier the fastest of four ways to count them on this machine, chosen when
the probe loads: table lookup (the GEMM's), nibble lookup, Harley-Seal carry-save adding, and scalar 64-bit
popcnt. Their time is a floor for the layer. The same loop on 2 threads shows how far 2 threads can scale at that
moment.
The probe times itself from the moment all its threads run: a thread started on an idle vCPU of this VM took up to
1.6 ms to begin, which had made 2 threads of a 3 ms probe look no faster than one. The probe also samples the
host's state (timing.HostLoad): how fast the core's loads from L1 run at that moment.
"""

from __future__ import annotations

import ctypes
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from timing import Measured

SOURCE = Path(__file__).with_name("popcount_probe.c")
WORD_BITS = 512


# A sample of the host's state: the fastest of 3 timings of 50 passes over 32 KB, each about 10 us when the core's
# loads run at full speed.
L1_PASSES, L1_REPEATS = 50, 3


# Build flags per kernel tier; the tiers without a probe are named in floor_tier's message.
TIER_FLAGS = {"avx512": ["-mavx512f", "-mavx512vpopcntdq"], "avx2": ["-mavx2", "-mpopcnt"]}
# Units of one calibration run of each method (a few milliseconds), and runs per method: the fastest counts.
CALIBRATION_UNITS, CALIBRATION_RUNS = 200_000, 5


@dataclass(frozen=True)
class MachineProbe:
    """popcount_probe.c, built and loaded for one tier, with the method that counts fastest on this machine: the
    machine's arithmetic limit and a sample of its cores' state."""

    library: ctypes.CDLL
    tier: str
    method: int
    calibration: dict[str, float]  # each method's fastest calibration run, in milliseconds

    def triples(self, n: int, threads: int) -> Measured:
        """n units of 512 bit-pairs on each of `threads` threads, and the time they took."""
        seconds = self.library.units(self.method, n, threads)
        if seconds < 0:
            raise RuntimeError(f"popcount probe: could not start {threads} threads")
        return Measured(seconds)

    def l1_load_seconds(self) -> float:
        """The fastest of L1_REPEATS timings of L1_PASSES sums of a 32 KB buffer on the calling thread: it varies with
        the host's state."""
        return self.library.l1_load_seconds(L1_PASSES, L1_REPEATS)

    def describe(self) -> str:
        """Which method the floor counts with, and what the others took, for a bench's header."""
        name = self.library.method_name(self.method).decode()
        if len(self.calibration) == 1:
            return f"floor: {self.tier} {name}"
        times = ", ".join(f"{method} {ms:.2f} ms" for method, ms in self.calibration.items())
        return f"floor: {self.tier} {name}, the fastest of ({times}) for {CALIBRATION_UNITS} units"


def floor_tier(cpu_flags: str) -> tuple[str | None, str]:
    """The probe's tier for the kernels' tier (the best this CPU has, or BNN2ONNX_ISA's cap), or None and why not."""
    cap = os.environ.get("BNN2ONNX_ISA")
    if platform.machine() not in ("x86_64", "AMD64"):
        return None, "it needs an x86-64 CPU"
    if cap in ("portable", "avx512bw"):
        return None, f"there is none for the {cap} kernels"
    if cap != "avx2" and "avx512_vpopcntdq" in cpu_flags:
        return "avx512", ""
    if "avx2" in cpu_flags and "popcnt" in cpu_flags:
        return "avx2", ""
    return None, "it needs AVX2 or AVX-512 VPOPCNTDQ"


def load_probe() -> MachineProbe | None:
    """The probe for the kernels' tier, or None (with the reason printed) when this machine cannot build or run it
    (not x86-64 with AVX2, the portable kernels, or no C compiler)."""
    cpu_flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    tier, why_not = floor_tier(cpu_flags)
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if tier is None or compiler is None:
        print(f"(no popcount floor: {why_not or 'it needs a C compiler'})")
        return None
    with tempfile.TemporaryDirectory() as folder:  # the loaded library stays mapped once its file is gone
        library = Path(folder) / "popcount_probe.so"
        build = subprocess.run([compiler, "-O2", *TIER_FLAGS[tier], "-shared", "-fPIC", "-pthread",
                                "-o", str(library), str(SOURCE)], capture_output=True, text=True, check=False)
        if build.returncode != 0:
            print(f"(no popcount floor: building {SOURCE.name} failed: {build.stderr.strip()[:200]})")
            return None
        loaded = ctypes.CDLL(str(library))
    loaded.units.argtypes = [ctypes.c_int, ctypes.c_long, ctypes.c_int]
    loaded.units.restype = ctypes.c_double
    loaded.method_name.argtypes = [ctypes.c_int]
    loaded.method_name.restype = ctypes.c_char_p
    loaded.l1_load_seconds.argtypes = [ctypes.c_long, ctypes.c_int]
    loaded.l1_load_seconds.restype = ctypes.c_double
    fastest_ms = [1e3 * min(loaded.units(method, CALIBRATION_UNITS, 1) for _ in range(CALIBRATION_RUNS))
                  for method in range(loaded.methods())]
    calibration = {loaded.method_name(method).decode(): ms for method, ms in enumerate(fastest_ms)}
    return MachineProbe(loaded, tier, fastest_ms.index(min(fastest_ms)), calibration)


def layer_triples(outputs: int, filters: int, reduction_bits: int) -> int:
    """The fewest 512-bit xor/popcount/add triples of a binary layer: outputs x filters dot products of
    reduction_bits bits each."""
    return -(-outputs * filters * reduction_bits // WORD_BITS)
