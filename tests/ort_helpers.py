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


@contextmanager
def forced_isa(isa: str | None) -> Iterator[None]:
    """BNN2ONNX_ISA is read when a kernel is created (at session creation)."""
    previous = os.environ.pop("BNN2ONNX_ISA", None)
    if isa is not None:
        os.environ["BNN2ONNX_ISA"] = isa
    try:
        yield
    finally:
        os.environ.pop("BNN2ONNX_ISA", None)
        if previous is not None:
            os.environ["BNN2ONNX_ISA"] = previous


def session(model: onnx.ModelProto, threads: int = 1, isa: str | None = None,
            custom_ops: bool = True) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    with forced_isa(isa):
        if custom_ops:
            return bnn2onnx.inference_session(model, options=options)
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray], **kwargs) -> np.ndarray:
    return session(model, **kwargs).run(None, feeds)[0]
