"""Request bodies for a served model: JSON or .npy in, checked against the model's inputs, outputs back in the
client's format. A body that does not fit the model raises BadRequest with the HTTP status to answer (4xx); the
model never sees it."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
import onnx

NPY_TYPES = ("application/x-npy", "application/octet-stream")


class BadRequest(Exception):
    """A request the server answers with `status` and this message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class InputSpec:
    """One model input: its name, element type, and shape (None where any size is accepted)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]

    def check(self, array: np.ndarray, max_rows: int) -> None:
        if array.dtype != self.dtype:
            raise BadRequest(400, f"input {self.name!r}: dtype {array.dtype}, the model takes {self.dtype}")
        if array.ndim != len(self.shape) or any(want is not None and got != want
                                                for got, want in zip(array.shape, self.shape)):
            wanted = "x".join("N" if d is None else str(d) for d in self.shape)
            raise BadRequest(400, f"input {self.name!r}: shape {list(array.shape)}, the model takes {wanted}")
        if array.ndim and not 1 <= array.shape[0] <= max_rows:
            raise BadRequest(400, f"input {self.name!r}: {array.shape[0]} rows, at least 1 and at most {max_rows}")


def model_inputs(model: onnx.ModelProto) -> list[InputSpec]:
    """The graph's inputs that are not initializers."""
    initializers = {t.name for t in model.graph.initializer}
    specs = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
        specs.append(InputSpec(value.name, np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)), shape))
    return specs


def batch_dimension_free(model: onnx.ModelProto) -> bool:
    """Whether every input and output has a free first dimension, along which requests can be joined into one run."""
    initializers = {t.name for t in model.graph.initializer}
    values = [v for v in model.graph.input if v.name not in initializers] + list(model.graph.output)
    return all(v.type.tensor_type.shape.dim and not v.type.tensor_type.shape.dim[0].HasField("dim_value")
               for v in values)


def decode_body(body: bytes, content_type: str, inputs: list[InputSpec], max_rows: int) -> dict[str, np.ndarray]:
    """The feeds of a request: JSON `{"inputs": {name: nested list}}` (or `{"inputs": nested list}` for a model
    with one input), or one .npy array for a model with one input. JSON numbers are converted to the input's
    dtype; a .npy array must have it already (no silent cast)."""
    media_type = content_type.split(";")[0].strip().lower()
    if media_type in NPY_TYPES:
        if len(inputs) != 1:
            raise BadRequest(400, f"a .npy body carries one array; the model has {len(inputs)} inputs: send JSON")
        try:
            feeds = {inputs[0].name: np.load(io.BytesIO(body), allow_pickle=False)}
        except (ValueError, OSError, EOFError) as error:
            raise BadRequest(400, f"the body is not a .npy array: {error}") from error
    elif media_type in ("application/json", ""):
        feeds = _json_feeds(body, inputs)
    else:
        raise BadRequest(415, f"content type {media_type!r}: send application/json or application/x-npy")
    for spec in inputs:
        spec.check(feeds[spec.name], max_rows)
    return feeds


def _json_feeds(body: bytes, inputs: list[InputSpec]) -> dict[str, np.ndarray]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest(400, f"the body is not JSON: {error}") from error
    if not isinstance(document, dict) or "inputs" not in document:
        raise BadRequest(400, 'the JSON body must be an object with "inputs"')
    values = document["inputs"]
    if not isinstance(values, dict):
        if len(inputs) != 1:
            raise BadRequest(400, f'the model has {len(inputs)} inputs: "inputs" must map each name to its values')
        values = {inputs[0].name: values}
    names = {spec.name for spec in inputs}
    if set(values) != names:
        raise BadRequest(400, f"inputs {sorted(values)}, the model takes {sorted(names)}")
    feeds = {}
    for spec in inputs:
        try:
            array = np.asarray(values[spec.name])
        except ValueError as error:  # ragged lists
            raise BadRequest(400, f"input {spec.name!r}: not a rectangular array: {error}") from error
        if array.dtype.kind not in "biuf":
            raise BadRequest(400, f"input {spec.name!r}: values must be numbers, got {array.dtype}")
        feeds[spec.name] = array.astype(spec.dtype)
    return feeds


def encode_outputs(names: list[str], outputs: list[np.ndarray], accept: str) -> tuple[bytes, str]:
    """The response body and its content type: .npy when the client accepts it and there is one output, else
    JSON `{"outputs": {name: nested list}}`."""
    if len(outputs) == 1 and any(kind in accept for kind in NPY_TYPES):
        buffer = io.BytesIO()
        np.save(buffer, outputs[0], allow_pickle=False)
        return buffer.getvalue(), NPY_TYPES[0]
    document = {"outputs": {name: array.tolist() for name, array in zip(names, outputs)}}
    return json.dumps(document).encode(), "application/json"
