"""`bnn2onnx bench`: latency percentiles of a model in onnxruntime (with the bnn2onnx ops) and a per-node time
profile from onnxruntime's own profiler."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import onnxruntime as ort

from bnn2onnx.errors import ConversionError
from bnn2onnx.runtime import session_options


@dataclass
class NodeTime:
    name: str
    op: str
    total_us: float
    share: float


def latencies_ms(model: str | Path, feeds: dict[str, np.ndarray], threads: int, runs: int) -> list[float]:
    session = ort.InferenceSession(str(model), session_options(threads), providers=["CPUExecutionProvider"])
    for _ in range(max(3, runs // 10)):
        session.run(None, feeds)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def percentiles(times: list[float]) -> dict[str, float]:
    ordered = np.sort(times)
    return {"p50": float(np.percentile(ordered, 50)), "p90": float(np.percentile(ordered, 90)),
            "p99": float(np.percentile(ordered, 99)), "mean": statistics.fmean(times)}


def node_profile(model: str | Path, feeds: dict[str, np.ndarray], threads: int, runs: int,
                 warmup: int = 5) -> list[NodeTime]:
    """Time per node over `runs` runs after `warmup` runs (its median a run, times the runs), from onnxruntime's
    profiler (largest first).
    The first runs allocate buffers and build the ops' per-size tables; counted, they decide which node looks
    slowest on a small model."""
    with tempfile.TemporaryDirectory() as tmp:
        options = session_options(threads)
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        for _ in range(warmup + runs):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    run_ends = sorted(e["ts"] + e["dur"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    start = run_ends[warmup - 1] if 0 < warmup <= len(run_ends) else 0
    durations: dict[tuple[str, str], list[float]] = defaultdict(list)
    for event in events:
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time") and event["ts"] >= start:
            durations[(event["name"][: -len("_kernel_time")], event.get("args", {}).get("op_name", "?"))].append(
                event["dur"])
    # Each node's median time a run, times the runs: a run that the host delayed does not decide the order.
    totals = {key: statistics.median(times) * runs for key, times in durations.items()}
    whole = sum(totals.values()) or 1.0
    return sorted((NodeTime(name, op, us, us / whole) for (name, op), us in totals.items()),
                  key=lambda n: n.total_us, reverse=True)


def pyplot() -> ModuleType:
    """matplotlib's pyplot, drawing to files only (Agg), or a clear error where matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ConversionError("--png needs matplotlib: pip install 'bnn2onnx[plot]' (or matplotlib)") from error
    return plt


def save_bar_chart(nodes: list[NodeTime], path: Path, title: str) -> None:
    plt = pyplot()
    top = nodes[:20][::-1]
    figure, axes = plt.subplots(figsize=(10, 0.35 * len(top) + 1.5))
    axes.barh([f"{n.name} ({n.op})" for n in top], [n.share * 100 for n in top])
    axes.set_xlabel("share of node time (%)")
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def binary_share(nodes: list[NodeTime]) -> float:
    """The share of node time spent in the bnn2onnx ops."""
    from bnn2onnx.ops import schema

    return sum(n.share for n in nodes if n.op in schema.OP_TYPES)
