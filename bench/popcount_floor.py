"""The machine's own limit for binary layers, measured in the same rounds as the layers: popcount_probe.c (xor,
popcount and add of 512-bit words, registers only) built with the system C compiler. A binary conv or dense of
M outputs, N filters and a reduction of K bits needs M * N * K / 512 such triples at least, 3 vector instructions
each on this CPU's 2 vector ports: their time is a floor for the layer (a popcount alone runs 1.5x faster, but
every word needs its xor and its add). The same loop on 2 threads shows how far 2 threads can scale at that moment.
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


@dataclass(frozen=True)
class MachineProbe:
    """popcount_probe.c, built and loaded: the machine's arithmetic limit and a sample of its cores' state."""

    library: ctypes.CDLL

    def triples(self, n: int, threads: int) -> Measured:
        """n triples on each of `threads` threads, and the time they took."""
        seconds = self.library.triples(n, threads)
        if seconds < 0:
            raise RuntimeError(f"popcount probe: could not start {threads} threads")
        return Measured(seconds)

    def l1_load_seconds(self) -> float:
        """The fastest of L1_REPEATS timings of L1_PASSES sums of a 32 KB buffer on the calling thread: it varies with
        the host's state."""
        return self.library.l1_load_seconds(L1_PASSES, L1_REPEATS)


def load_probe() -> MachineProbe | None:
    """The probe, or None (with the reason printed) when this machine cannot build or run it (not x86-64 with
    AVX-512 VPOPCNTDQ, or no C compiler)."""
    cpu_flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if platform.machine() not in ("x86_64", "AMD64") or "avx512_vpopcntdq" not in cpu_flags or compiler is None:
        print("(no popcount floor: it needs an x86-64 CPU with AVX-512 VPOPCNTDQ and a C compiler)")
        return None
    with tempfile.TemporaryDirectory() as folder:  # the loaded library stays mapped once its file is gone
        library = Path(folder) / "popcount_probe.so"
        build = subprocess.run([compiler, "-O2", "-mavx512f", "-mavx512vpopcntdq", "-shared", "-fPIC", "-pthread",
                                "-o", str(library), str(SOURCE)], capture_output=True, text=True, check=False)
        if build.returncode != 0:
            print(f"(no popcount floor: building {SOURCE.name} failed: {build.stderr.strip()[:200]})")
            return None
        loaded = ctypes.CDLL(str(library))
    loaded.triples.argtypes = [ctypes.c_long, ctypes.c_int]
    loaded.triples.restype = ctypes.c_double
    loaded.l1_load_seconds.argtypes = [ctypes.c_long, ctypes.c_int]
    loaded.l1_load_seconds.restype = ctypes.c_double
    return MachineProbe(loaded)


def layer_triples(outputs: int, filters: int, reduction_bits: int) -> int:
    """The fewest 512-bit xor/popcount/add triples of a binary layer: outputs x filters dot products of
    reduction_bits bits each."""
    return -(-outputs * filters * reduction_bits // WORD_BITS)
