"""Running one model in onnxruntime the way the tests need it: graph optimizations off (so the standard-op
models compute exactly the ops they list), a chosen thread count, and a chosen kernel ISA."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import onnx
import onnxruntime as ort

import bnn2onnx

# onnxruntime 1.23 and older crash creating a session for a custom-op node that skips optional inputs (empty
# names) before a later one (docs/ops.md); the converter never writes such a node.
CRASHES_ON_SKIPPED_INPUTS = tuple(int(part) for part in ort.__version__.split(".")[:2]) < (1, 24)


# Before onnxruntime 1.22 (or with BNN2ONNX_OP_TYPING=concrete) BinaryConv2D and BinaryDense are registered with
# concrete types (docs/ops.md), so onnxruntime itself refuses a node whose types no variant has.
CONCRETE_TYPING = (tuple(int(part) for part in ort.__version__.split(".")[:2]) < (1, 22) or
                   os.environ.get("BNN2ONNX_OP_TYPING") == "concrete")


def skips_inputs(model: onnx.ModelProto) -> bool:
    return any(name == "" for node in model.graph.node for name in node.input)


@contextmanager
def kernel_choice(isa: str | None, implicit_gemm: bool = False) -> Iterator[None]:
    """BNN2ONNX_ISA (a cap on the kernel tier) and BNN2ONNX_IMPLICIT_GEMM (BinaryConv2D's implicit GEMM with any
    tier, not only AVX-512) are read when a kernel is created (at session creation)."""
    settings = {"BNN2ONNX_ISA": isa, "BNN2ONNX_IMPLICIT_GEMM": "1" if implicit_gemm else None}
    previous = {name: os.environ.pop(name, None) for name in settings}
    os.environ.update({name: value for name, value in settings.items() if value is not None})
    try:
        yield
    finally:
        for name, value in previous.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value


def session(model: onnx.ModelProto, threads: int = 1, isa: str | None = None, custom_ops: bool = True,
            implicit_gemm: bool = False) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    with kernel_choice(isa, implicit_gemm):
        if custom_ops:
            return bnn2onnx.inference_session(model, options=options)
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray], **kwargs) -> np.ndarray:
    return session(model, **kwargs).run(None, feeds)[0]
