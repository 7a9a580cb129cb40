"""Float ONNX frontend: a float .onnx from any framework is already the canonical form (a QONNX model is lowered
to it first, `qonnx.py`); onnxruntime running it is the source the converted model is verified against (a model
onnxruntime cannot run is refused)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from bnn2onnx.errors import ConversionError, first_line
from bnn2onnx.frontends.qonnx import is_qonnx, lower_qonnx
from bnn2onnx.ops import schema
from bnn2onnx.runtime import exact_session_options, run_batched


def read_onnx(path: str | Path) -> onnx.ModelProto:
    """An .onnx file, or a one-line error for a missing or unreadable one."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: no such file")
    try:
        return onnx.load(path)
    except Exception as error:  # protobuf raises its own types
        raise ConversionError(f"{path}: not a valid ONNX model: {first_line(error)}") from error


def load_float_onnx(path: str | Path) -> onnx.ModelProto:
    model = read_onnx(path)
    if any(node.domain == schema.DOMAIN for node in model.graph.node):
        raise ConversionError(f"{path}: already contains bnn2onnx ops; give the float model")
    return lower_qonnx(model) if is_qonnx(model) else model


def onnxruntime_predict(model: onnx.ModelProto):
    """The float model's first output, computed by onnxruntime (no graph optimisations: exactly its ops)."""
    try:
        session = ort.InferenceSession(model.SerializeToString(), exact_session_options(),
                                       providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's own exception types
        raise ConversionError(f"onnxruntime cannot run the float model: {str(error).strip()[:300]}") from error

    def predict(feeds: dict[str, np.ndarray]) -> np.ndarray:
        return run_batched(session, feeds)[0]

    return predict
