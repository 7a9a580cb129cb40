"""Whole-network speed at 224x224, batch 1: larq_zoo models converted by bnn2onnx against the float ONNX of the
same Keras model in onnxruntime, and against Larq Compute Engine when it is installed (`pip install
larq-compute-engine==0.16.0`; its converter + Interpreter, best of its kernel options), at 1 and 2 threads.

The contenders of one thread count run in interleaved rounds (timing.py), each turn after a pause that lets the
previous contender's idle worker threads stop spinning (they would otherwise take the cores); the 2-thread scaling
of bnn2onnx and of ORT float comes from one more set in which 1 and 2 threads are interleaved, with the machine's
own scaling in the same rounds (popcount_floor.py: a register-only xor/popcount/add loop on 1 and on 2 threads),
printed both as the ratio of the medians and as the median of each round's own ratio (timing.paired_ratio), which
cancels the host's slow phases when they slow both thread counts. Medians and their ratios are printed, with the
host's load over the measurement (timing.HostLoad: load average, the hypervisor's steal of the vCPUs, and how much
slower than at their fastest the core's loads ran). Each contender's peak RSS is measured in a fresh process of its
own (load the model, run it 5 times, read the process's high-water mark, VmHWM); file sizes are those of the models
on disk.

    python bench/network_speed.py [MODEL ...] [--rounds N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from popcount_floor import MachineProbe, load_probe
from timing import (
    SPIN_PAUSE_S,
    HostLoad,
    L1Probe,
    interleaved_medians_ms,
    interleaved_rounds_ms,
    kernel_choice,
    medians_ms,
    paired_ratio,
)

ROOT = Path(__file__).resolve().parent.parent
INPUT_SHAPE = (1, 224, 224, 3)
# Triples per thread of one probe run: a few milliseconds, like a network run.
PROBE_TRIPLES = 6_000_000
# LCE's kernel options: (use_indirect_bgemm, use_xnnpack).
LCE_OPTIONS = {"lce": (False, False), "lce indirect_bgemm": (True, False), "lce xnnpack": (False, True),
               "lce indirect_bgemm+xnnpack": (True, True)}


def runner(kind: str, path: Path, threads: int) -> Callable[[np.ndarray], object]:
    """A function that runs the model at `path` once: kind is "ort float", "bnn2onnx" or one of LCE_OPTIONS."""
    if kind in LCE_OPTIONS:
        import larq_compute_engine as lce

        indirect, xnnpack = LCE_OPTIONS[kind]
        interpreter = lce.testing.Interpreter(path.read_bytes(), num_threads=threads, use_reference_bconv=False,
                                              use_indirect_bgemm=indirect, use_xnnpack=xnnpack)
        return interpreter.predict
    import onnxruntime as ort

    import bnn2onnx

    if kind == "bnn2onnx":
        session = bnn2onnx.inference_session(str(path), intra_op_num_threads=threads)
    else:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})


def peak_rss_mib(kind: str, path: Path) -> float:
    """Peak RSS of a fresh process that loads the model and runs it 5 times (1 thread)."""
    output = subprocess.run([sys.executable, __file__, "--rss-of", kind, str(path)], check=True, capture_output=True,
                            text=True, cwd=ROOT).stdout
    return float(output.split()[-1])


def measure_own_rss(kind: str, path: Path) -> None:
    run = runner(kind, path, threads=1)
    x = np.random.default_rng(0).standard_normal(INPUT_SHAPE).astype(np.float32)
    for _ in range(5):
        run(x)
    # VmHWM, not getrusage's ru_maxrss: on Linux the latter keeps the forked parent's size across exec.
    status = Path("/proc/self/status").read_text()
    print(int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024)


def export_models(name: str, folder: Path) -> dict[str, Path]:
    """The model as float ONNX, bnn2onnx ONNX and (when LCE is installed) LCE flatbuffer, by contender kind."""
    sys.path.insert(0, str(ROOT / "tests"))
    from keras_models import randomize_batch_norms  # first: sets up legacy Keras for larq

    # isort: split
    import larq_zoo
    import onnx

    from bnn2onnx.converter import convert_with_report

    factory = getattr(larq_zoo.literature, name, None) or getattr(larq_zoo.sota, name)
    model = randomize_batch_norms(factory(weights=None, input_shape=INPUT_SHAPE[1:]))
    result = convert_with_report(model, verify_result=False)
    paths = {"ort float": folder / f"{name}_float.onnx", "bnn2onnx": folder / f"{name}.onnx"}
    onnx.save(result.float_model, paths["ort float"])
    onnx.save(result.model, paths["bnn2onnx"])
    try:
        import larq_compute_engine as lce
    except ImportError:
        return paths
    flatbuffer = folder / f"{name}.tflite"
    flatbuffer.write_bytes(lce.convert_keras_model(model))
    return paths | dict.fromkeys(LCE_OPTIONS, flatbuffer)


def report(name: str, paths: dict[str, Path], rounds: int, probe: MachineProbe | None,
           l1: L1Probe | None) -> None:
    sizes = {kind: path.stat().st_size / 2**20 for kind, path in paths.items()}
    print(f"{name}: file size ORT float {sizes['ort float']:.1f} MiB, bnn2onnx {sizes['bnn2onnx']:.2f} MiB"
          + (f", LCE {sizes['lce']:.2f} MiB" if "lce" in sizes else ", LCE not installed"))
    x = np.random.default_rng(0).standard_normal(INPUT_SHAPE).astype(np.float32)
    for threads in (1, 2):
        load = HostLoad(l1)
        runs = {kind: runner(kind, path, threads) for kind, path in paths.items()}
        medians = interleaved_medians_ms({kind: partial(run, x) for kind, run in runs.items()}, rounds, timed=3,
                                         warmup=1, pause_s=SPIN_PAUSE_S, host=load)
        ms = medians["bnn2onnx"]
        line = (f"  {threads} thread(s), medians of {rounds}x3 runs in interleaved rounds, {load}: bnn2onnx {ms:.2f} "
                f"ms, ORT float {medians['ort float']:.2f} ms ({medians['ort float'] / ms:.2f}x)")
        lce = {kind: value for kind, value in medians.items() if kind in LCE_OPTIONS}
        if lce:
            best = min(lce, key=lce.__getitem__)
            line += f", LCE best ({best}) {lce[best]:.2f} ms ({lce[best] / ms:.2f}x)"
        print(line, flush=True)
    # Scaling from one interleaved set: 1 and 2 threads timed minutes apart would also measure the host's drift.
    scaled = ("bnn2onnx", "ort float")
    scaling_runs = {f"{kind} {threads}": partial(runner(kind, paths[kind], threads), x)
                    for kind in scaled for threads in (1, 2)}
    if probe:
        scaled += ("machine",)
        scaling_runs |= {"machine 1": partial(probe.triples, PROBE_TRIPLES, 1),
                         "machine 2": partial(probe.triples, PROBE_TRIPLES // 2, 2)}
    load = HostLoad(l1)
    times = interleaved_rounds_ms(scaling_runs, rounds, timed=3, warmup=1, pause_s=SPIN_PAUSE_S, host=load)
    medians = medians_ms(times)
    print(f"  2 threads over 1 (all in the same interleaved rounds, {load}; ratio of medians, median of the rounds' "
          "ratios): " + ", ".join(
              f"{kind} {medians[f'{kind} 1'] / medians[f'{kind} 2']:.2f}x, "
              f"{paired_ratio(times, f'{kind} 1', f'{kind} 2'):.2f}x ({medians[f'{kind} 1']:.2f} -> "
              f"{medians[f'{kind} 2']:.2f} ms)" for kind in scaled), flush=True)
    kinds = ["ort float", "bnn2onnx"] + (["lce"] if "lce" in paths else [])
    print("  peak RSS (fresh process, 1 thread): "
          + ", ".join(f"{kind} {peak_rss_mib(kind, paths[kind]):.0f} MiB" for kind in kinds), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="*", default=["QuickNet", "BiRealNet"])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--rss-of", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_of:
        measure_own_rss(args.rss_of[0], Path(args.rss_of[1]))
        return
    probe = load_probe()
    print(kernel_choice())
    if probe:
        print(probe.describe())
    l1 = L1Probe(probe.l1_load_seconds) if probe else None
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            report(name, export_models(name, Path(folder)), args.rounds, probe, l1)


if __name__ == "__main__":
    main()
