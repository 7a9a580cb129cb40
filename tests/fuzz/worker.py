"""A fuzz worker process: reads one case spec (JSON) per line on stdin, runs it in onnxruntime with the bnn2onnx
ops, and writes one JSON line per case: {"outcome": ..., "detail": ...}. A crash, a hang or a sanitizer report
ends or stalls the process; the harness (harness.py) notices and classifies that case itself.

Outcomes written here:
  match           ran, and equals the numpy reference (packed bit for bit, float to 1e-5 relative)
  mismatch        ran, and differs from the reference                                     (a failure)
  accepted_invalid ran, though the reference (or docs/ops.md's contract) refuses the case  (a failure)
  unchecked       ran; too large for the reference to follow, or outside the contract
  error           a clean onnxruntime error (op-named, or onnxruntime's own schema check)
  refused_valid   a clean error for a case the reference computes (a documented size limit, say)
  too_large       not run: a valid case whose output alone exceeds OUTPUT_LIMIT
  unbuildable     numpy cannot make the case's input (an empty shape whose other dimensions overflow, or a huge
                  non-empty one)
"""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzz.cases import Spec, build, expected, output_bytes

import bnn2onnx

MEMORY_LIMIT = 3 << 30
# A valid case whose output alone is larger is not run: only onnxruntime's allocator would be tested, and under
# AddressSanitizer a failed allocation inside onnxruntime ends the process.
OUTPUT_LIMIT = 1 << 28


def _same(actual: np.ndarray, want: np.ndarray) -> bool:
    if actual.dtype != want.dtype or actual.shape != want.shape:
        return False
    if want.dtype == np.int32:
        return bool(np.array_equal(actual, want))
    return bool(np.allclose(actual, want, rtol=1e-5, atol=1e-6))


def run_case(spec: Spec) -> dict[str, str]:
    model, feeds, values = build(spec)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = spec["threads"]
    options.log_severity_level = 4
    for name in ("BNN2ONNX_ISA", "BNN2ONNX_IMPLICIT_GEMM"):
        os.environ.pop(name, None)
    if spec["isa"] != "native":
        os.environ["BNN2ONNX_ISA"] = spec["isa"]
    if spec.get("implicit_gemm"):
        os.environ["BNN2ONNX_IMPLICIT_GEMM"] = "1"
    try:
        want = expected(spec, values)
    except MemoryError:  # the reference, written to be read, holds whole padded tensors
        want = "unchecked: the reference ran out of memory"
    valid = not (isinstance(want, str) and want.startswith("refused"))
    if valid and output_bytes(spec, values) > OUTPUT_LIMIT:
        return {"outcome": "too_large", "detail": f"an output of about {output_bytes(spec, values):.3g} bytes"}
    try:
        session = bnn2onnx.inference_session(model, options=options)
        outputs = session.run(None, feeds)
    except Exception as error:  # noqa: BLE001 (onnxruntime raises several types; any of them is a clean error)
        message = str(error).splitlines()[0][:300]
        return {"outcome": "refused_valid" if isinstance(want, list) else "error", "detail": message}
    if isinstance(want, str) and want.startswith("unchecked"):
        return {"outcome": "unchecked", "detail": want}
    if isinstance(want, str):
        return {"outcome": "accepted_invalid", "detail": want}
    for index, (actual, reference) in enumerate(zip(outputs, want, strict=True)):
        if not _same(actual, reference):
            return {"outcome": "mismatch", "detail": f"output {index}: {actual.dtype}{list(actual.shape)} vs "
                                                     f"reference {reference.dtype}{list(reference.shape)}"}
    return {"outcome": "match", "detail": ""}


def limit_memory() -> None:
    """A case whose output is legitimately gigabytes (pads of 2^24) must fail to allocate, cleanly, rather than
    run for minutes: address space capped at MEMORY_LIMIT. Under AddressSanitizer (whose shadow memory needs
    terabytes of address space) its own max_allocation_size_mb does this (library_builds.py)."""
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def main() -> None:
    limit_memory()
    for line in sys.stdin:
        try:
            result = run_case(json.loads(line))
        except (ValueError, MemoryError) as error:  # numpy cannot hold every shape drawn (2^31 x 2^40 x 0, ...)
            result = {"outcome": "unbuildable", "detail": str(error)[:300]}
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
