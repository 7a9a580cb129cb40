"""Timing shared by the bench scripts. This machine is noisy: its speed drifts over seconds, so contenders are
timed in interleaved rounds and compared by their medians. Within a round each contender runs back to back
(untimed warm-up runs first): switching from one contender to another costs the next one a slow first run (its
data left the caches, idle worker threads of the previous one still spin), which is not the speed being
measured.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# Seconds to wait before a contender's turn when threads are involved: onnxruntime's idle intra-op workers spin
# for 40-60 ms after a run (measured here from their CPU time), and a spinning worker takes a vCPU from the next
# multi-threaded contender.
SPIN_PAUSE_S = 0.15


@dataclass(frozen=True)
class Measured:
    """What a run that times itself returns: its own duration, taken instead of the wall time around the call."""

    seconds: float


def interleaved_medians_ms(runs: Mapping[str, Callable[[], object]], rounds: int, timed: int = 5, warmup: int = 2,
                           pause_s: float = 0.0) -> dict[str, float]:
    """Median milliseconds per contender over `rounds` rounds of `warmup` untimed and `timed` timed runs each,
    with `pause_s` seconds of sleep before each contender's turn. A run returning a Measured is timed by it."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            time.sleep(pause_s)
            for _ in range(warmup):
                run()
            for _ in range(timed):
                start = time.perf_counter()
                result = run()
                elapsed = time.perf_counter() - start
                times[name].append(result.seconds if isinstance(result, Measured) else elapsed)
    return {name: statistics.median(samples) * 1e3 for name, samples in times.items()}
