"""Timing shared by the bench scripts. This machine is noisy: its speed drifts over seconds, so contenders are
timed in interleaved rounds and compared by their medians. Within a round each contender runs back to back
(untimed warm-up runs first): switching from one contender to another costs the next one a slow first run (its
data left the caches, idle worker threads of the previous one still spin), which is not the speed being
measured.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Seconds to wait before a contender's turn when threads are involved: onnxruntime's idle intra-op workers spin
# for 40-60 ms after a run (measured here from their CPU time), and a spinning worker takes a vCPU from the next
# multi-threaded contender.
SPIN_PAUSE_S = 0.15
# Seconds of untimed runs after such a pause: a vCPU that idled can run slow for its next ~0.1 s of work (measured
# here: QuickNet 1 thread 6.7-7.8 ms per run for the first 10-15 runs after a 0.15 s sleep, 5.5 ms after them),
# which a fixed count of warm-up runs leaves in the timed runs of a short contender and not of a long one.
RAMP_S = 0.2


def kernel_choice() -> str:
    """Which bnn2onnx kernels the run uses, for a bench's header: the best this CPU has, or the tier BNN2ONNX_ISA
    caps them at (docs/ops.md: avx512bw, avx2, portable), to see what a CPU without the best one gets."""
    cap = os.environ.get("BNN2ONNX_ISA")
    return f"bnn2onnx kernels capped at BNN2ONNX_ISA={cap}" if cap else "bnn2onnx kernels: the best this CPU has"


@dataclass(frozen=True)
class Measured:
    """What a run that times itself returns: its own duration, taken instead of the wall time around the call."""

    seconds: float


def interleaved_rounds_ms(runs: Mapping[str, Callable[[], object]], rounds: int, timed: int = 5, warmup: int = 2,
                          pause_s: float = 0.0, host: HostLoad | None = None) -> dict[str, list[list[float]]]:
    """Milliseconds per contender and round: `rounds` rounds of `warmup` untimed and `timed` timed runs each, with
    `pause_s` seconds of sleep before each contender's turn (then untimed runs for at least RAMP_S) and the host's
    state sampled after it. A run returning a Measured is timed by it."""
    times: dict[str, list[list[float]]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            time.sleep(pause_s)
            warm_until = time.perf_counter() + (RAMP_S if pause_s else 0.0)
            for _ in range(warmup):
                run()
            while time.perf_counter() < warm_until:
                run()
            samples = []
            for _ in range(timed):
                start = time.perf_counter()
                result = run()
                elapsed = time.perf_counter() - start
                samples.append(1e3 * (result.seconds if isinstance(result, Measured) else elapsed))
            times[name].append(samples)
            if host:
                host.sample()
    return times


def medians_ms(times: Mapping[str, list[list[float]]]) -> dict[str, float]:
    """Median per contender over all its timed runs, from interleaved_rounds_ms."""
    return {name: statistics.median(sample for samples in per_round for sample in samples)
            for name, per_round in times.items()}


def interleaved_medians_ms(runs: Mapping[str, Callable[[], object]], rounds: int, timed: int = 5, warmup: int = 2,
                           pause_s: float = 0.0, host: HostLoad | None = None) -> dict[str, float]:
    """Median milliseconds per contender over all timed runs of interleaved_rounds_ms."""
    return medians_ms(interleaved_rounds_ms(runs, rounds, timed, warmup, pause_s, host))


def paired_ratio(times: Mapping[str, list[list[float]]], slower: str, faster: str) -> float:
    """Median over rounds of how many times faster `faster` ran than `slower` in the same round. The host's speed
    drifts in phases of seconds that slow every contender alike; a round's contenders run within a fraction of a
    second of each other, so each round's ratio cancels the phase that the medians over all rounds mix in."""
    return statistics.median(statistics.median(slow) / statistics.median(fast)
                             for slow, fast in zip(times[slower], times[faster], strict=True))


def _steal_and_total_jiffies() -> tuple[int, int] | None:
    """Summed over the CPUs, the time the hypervisor ran other guests on them (steal) and all time, from
    /proc/stat's "cpu" line; None where there is no such file."""
    stat = Path("/proc/stat")
    if not stat.exists():
        return None
    fields = [int(value) for value in stat.read_text().split("\n", 1)[0].split()[1:]]
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


@dataclass
class L1Probe:
    """Seconds of a fixed loop of loads from L1 (`sample`), and the fastest sample of the run so far: the core's
    speed when the host is quiet."""

    sample: Callable[[], float]
    fastest: float = math.inf

    def __call__(self) -> float:
        seconds = self.sample()
        self.fastest = min(self.fastest, seconds)
        return seconds


@dataclass
class HostLoad:
    """The machine's load over a measurement, from creation to str(): the load average at both ends, on a VM the
    share of its vCPUs' time the hypervisor gave to other guests (steal), and with an `l1_probe` the median of its
    samples over the fastest of the run (l1_slowdown). A contended host shows in steal, not in the load average: its
    vCPUs simply run less. A shared core shows in neither: on this VM, loads ran 1.6x slower in phases of seconds
    while steal stayed near 0 and register-only arithmetic kept its speed."""

    l1_probe: L1Probe | None = None
    load: float = field(default_factory=lambda: os.getloadavg()[0])
    jiffies: tuple[int, int] | None = field(default_factory=_steal_and_total_jiffies)
    l1_samples: list[float] = field(default_factory=list)

    def sample(self) -> None:
        if self.l1_probe:
            self.l1_samples.append(self.l1_probe())

    def l1_slowdown(self) -> float | None:
        """How much slower the core's loads ran over the measurement than at their fastest in the run."""
        if not self.l1_probe or not self.l1_samples:
            return None
        return statistics.median(self.l1_samples) / self.l1_probe.fastest

    def __str__(self) -> str:
        text = f"load {self.load:.2f}->{os.getloadavg()[0]:.2f}"
        now = _steal_and_total_jiffies()
        if self.jiffies is not None and now is not None and now[1] != self.jiffies[1]:
            text += f", steal {100 * (now[0] - self.jiffies[0]) / (now[1] - self.jiffies[1]):.1f}%"
        slowdown = self.l1_slowdown()
        if slowdown is not None:
            text += f", L1 loads {slowdown:.2f}x their fastest"
        return text
