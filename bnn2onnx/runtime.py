"""Running models that use the bnn2onnx ops: the packaged custom-op library and onnxruntime sessions with it."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort

if TYPE_CHECKING:  # a device that only runs models need not have onnx
    import onnx

LIBRARY_NAME = "libbnn2onnx_ops.so"


def _installed_library() -> Path | None:
    """The library of the installed distribution: Python run from a source checkout's root imports the checkout's
    package, which has no compiled library, while `pip install .` put one beside the installed copy."""
    try:
        located = Path(str(importlib.metadata.distribution("bnn2onnx").locate_file(f"bnn2onnx/lib/{LIBRARY_NAME}")))
    except importlib.metadata.PackageNotFoundError:
        return None
    return located if located.is_file() else None


def library_path() -> Path:
    """Path of the custom-op library: BNN2ONNX_LIBRARY if set (e.g. a sanitizer build), else the one installed
    inside the package by `pip install .`."""
    override = os.environ.get("BNN2ONNX_LIBRARY")
    if override:
        if not Path(override).is_file():
            raise FileNotFoundError(f"BNN2ONNX_LIBRARY={override} is not a file")
        return Path(override)
    path = Path(__file__).resolve().parent / "lib" / LIBRARY_NAME
    if path.is_file():
        return path
    installed = _installed_library()
    if installed is None:
        raise FileNotFoundError(
            f"bnn2onnx custom-op library not found at {path}; install the package with `pip install .` "
            "(a source checkout has no compiled library)")
    return installed


def exact_session_options() -> ort.SessionOptions:
    """Options for the converter's own runs of a model, computed by exactly its ops: graph optimizations off (they
    fuse float ops, which then round differently), and only errors logged (onnxruntime's warnings about a source
    model's form, such as initializers listed as graph inputs, are not about the conversion)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    return options


def session_options(intra_op_num_threads: int | None = None,
                    options: ort.SessionOptions | None = None) -> ort.SessionOptions:
    """SessionOptions (new, or the given ones) with the bnn2onnx ops registered."""
    options = options if options is not None else ort.SessionOptions()
    if intra_op_num_threads is not None:
        options.intra_op_num_threads = intra_op_num_threads
    options.register_custom_ops_library(str(library_path()))
    return options


def inference_session(model: str | Path | bytes | onnx.ModelProto, intra_op_num_threads: int | None = None,
                      options: ort.SessionOptions | None = None) -> ort.InferenceSession:
    """An onnxruntime CPU session for `model` (path, serialized bytes or ModelProto) with the bnn2onnx ops."""
    if hasattr(model, "SerializeToString"):  # a ModelProto
        model = model.SerializeToString()
    elif isinstance(model, Path):
        model = str(model)
    return ort.InferenceSession(model, session_options(intra_op_num_threads, options),
                                providers=["CPUExecutionProvider"])


def run_batched(session: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """session.run over a batch of any size: a model exported with a fixed batch (QONNX from Brevitas, say) runs
    chunk by chunk, and the outputs are concatenated."""
    fixed = {i.shape[0] for i in session.get_inputs() if i.shape and isinstance(i.shape[0], int)}
    total = len(next(iter(feeds.values()))) if feeds else 0
    if len(fixed) != 1 or total == (step := fixed.pop()) or step <= 0 or total % step:
        return session.run(None, feeds)
    chunks = [session.run(None, {k: v[i:i + step] for k, v in feeds.items()}) for i in range(0, total, step)]
    return [np.concatenate(parts) for parts in zip(*chunks)]
