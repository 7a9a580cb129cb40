"""Whole-network speed at 224x224, batch 1: larq_zoo models converted by bnn2onnx against the float ONNX of the
same Keras model in onnxruntime, at 1 and 2 threads, and against Larq Compute Engine when it is installed
(`pip install larq-compute-engine==0.16.0`; its converter + Interpreter, best of its kernel options).
Medians and ratios from one run; also file sizes.   python bench/network_speed.py [MODEL ...] [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent


def median_ms(runs: int, run: Callable[..., object], *arguments: object) -> float:
    for _ in range(3):
        run(*arguments)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(*arguments)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def lce_best_ms(model, x: np.ndarray, threads: int, runs: int) -> tuple[float, str] | None:
    try:
        import larq_compute_engine as lce
    except ImportError:
        return None
    flatbuffer = lce.convert_keras_model(model)
    best = None
    for kernel in ("default", "indirect_bgemm"):
        try:
            interpreter = lce.testing.Interpreter(flatbuffer, num_threads=threads,
                                                  use_reference_bconv=False,
                                                  use_indirect_bgemm=kernel == "indirect_bgemm")
        except TypeError:  # an LCE without that option
            continue
        ms = median_ms(runs, interpreter.predict, x)
        best = min(best, (ms, kernel)) if best else (ms, kernel)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="*", default=["QuickNet", "BiRealNet"])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from keras_models import randomize_batch_norms  # first: sets up legacy Keras for larq

    # isort: split
    import larq_zoo

    import bnn2onnx
    from bnn2onnx.converter import convert_with_report

    for name in args.models:
        factory = getattr(larq_zoo.literature, name, None) or getattr(larq_zoo.sota, name)
        model = randomize_batch_norms(factory(weights=None, input_shape=(224, 224, 3)))
        result = convert_with_report(model, verify_result=False)
        x = np.random.default_rng(0).standard_normal((1, 224, 224, 3)).astype(np.float32)
        line = [(f"{name}: float ONNX {result.float_bytes / 2**20:.1f} MiB, "
                 f"bnn2onnx {result.converted_bytes / 2**20:.2f} MiB")]
        for threads in (1, 2):
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            float_session = ort.InferenceSession(result.float_model.SerializeToString(), options,
                                                 providers=["CPUExecutionProvider"])
            binary_session = bnn2onnx.inference_session(result.model, intra_op_num_threads=threads)
            feeds = {float_session.get_inputs()[0].name: x}
            float_ms = median_ms(args.runs, float_session.run, None, feeds)
            binary_ms = median_ms(args.runs, binary_session.run, None, feeds)
            text = (f"  {threads} thread(s): ORT float {float_ms:.1f} ms, bnn2onnx {binary_ms:.1f} ms "
                    f"({float_ms / binary_ms:.2f}x)")
            lce = lce_best_ms(model, x, threads, args.runs)
            text += (f", LCE best ({lce[1]}) {lce[0]:.1f} ms ({lce[0] / binary_ms:.2f}x)" if lce
                     else ", LCE not installed")
            line.append(text)
        print("\n".join(line), flush=True)


if __name__ == "__main__":
    main()
