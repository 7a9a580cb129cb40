"""`bnn2onnx export-triton`: a converted model as an entry of a Triton Inference Server model repository, for its
onnxruntime backend: REPO/NAME/1/model.onnx, REPO/NAME/libbnn2onnx_ops.so and REPO/NAME/config.pbtxt, whose
`model_operations { op_library_filename }` names the library where the server will see it. Written against Triton
2.73's ModelConfig (model_config.proto, as tritonclient 2.73.0 ships it)."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx

from bnn2onnx.errors import ConversionError
from bnn2onnx.runtime import LIBRARY_NAME, inference_session, library_path
from bnn2onnx.serving.requests import batch_dimension_free

# ONNX element types and Triton's names for them (model_config.proto's DataType).
TRITON_TYPES = {
    onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.FLOAT16: "TYPE_FP16", onnx.TensorProto.DOUBLE: "TYPE_FP64",
    onnx.TensorProto.INT8: "TYPE_INT8", onnx.TensorProto.INT16: "TYPE_INT16", onnx.TensorProto.INT32: "TYPE_INT32",
    onnx.TensorProto.INT64: "TYPE_INT64", onnx.TensorProto.UINT8: "TYPE_UINT8", onnx.TensorProto.UINT16: "TYPE_UINT16",
    onnx.TensorProto.UINT32: "TYPE_UINT32", onnx.TensorProto.UINT64: "TYPE_UINT64", onnx.TensorProto.BOOL: "TYPE_BOOL",
}


@dataclass(frozen=True)
class TritonTensor:
    name: str
    data_type: str
    dims: list[int]  # -1 where any size is accepted; without the batch dimension when the model batches


def _tensors(values: list[onnx.ValueInfoProto], batched: bool) -> list[TritonTensor]:
    tensors = []
    for value in values:
        tensor = value.type.tensor_type
        if tensor.elem_type not in TRITON_TYPES:
            raise ConversionError(f"{value.name}: element type {onnx.TensorProto.DataType.Name(tensor.elem_type)} "
                                  "has no Triton equivalent")
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
        tensors.append(TritonTensor(value.name, TRITON_TYPES[tensor.elem_type], dims[1:] if batched else dims))
    return tensors


def _tensor_block(kind: str, tensors: list[TritonTensor]) -> str:
    entries = ",\n".join(f'  {{\n    name: "{t.name}"\n    data_type: {t.data_type}\n'
                         f'    dims: [ {", ".join(map(str, t.dims))} ]\n  }}' for t in tensors)
    return f"{kind} [\n{entries}\n]\n"


def config_text(model: onnx.ModelProto, name: str, library_in_server: str, max_batch_size: int,
                instances: int) -> str:
    """config.pbtxt for `model` (protobuf text format of Triton's ModelConfig)."""
    initializers = {t.name for t in model.graph.initializer}
    batched = max_batch_size > 0 and batch_dimension_free(model)
    inputs = _tensors([v for v in model.graph.input if v.name not in initializers], batched)
    outputs = _tensors(list(model.graph.output), batched)
    return (f'name: "{name}"\nbackend: "onnxruntime"\nmax_batch_size: {max_batch_size if batched else 0}\n'
            + _tensor_block("input", inputs) + _tensor_block("output", outputs)
            + f"instance_group [\n  {{\n    kind: KIND_CPU\n    count: {instances}\n  }}\n]\n"
            + f'model_operations {{\n  op_library_filename: "{library_in_server}"\n}}\n')


def export_triton(model_path: Path, repository: Path, name: str | None = None, max_batch_size: int = 64,
                  instances: int = 1, repository_in_server: str = "/models") -> Path:
    """Writes the repository entry and returns its folder. The entry is assembled in a temporary folder and moved
    into place, so a failure leaves no partial entry; an existing entry of that name is refused."""
    model = onnx.load(str(model_path))
    inference_session(model)  # the library must run it here before it is handed to a server
    name = name or model_path.stem
    if not repository.is_dir():
        raise ConversionError(f"model repository {repository} does not exist")
    entry = repository / name
    if entry.exists():
        raise ConversionError(f"{entry} exists; remove it or choose another --name")
    text = config_text(model, name, f"{repository_in_server.rstrip('/')}/{name}/{LIBRARY_NAME}", max_batch_size,
                       instances)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=repository))
    try:
        (staging / "1").mkdir()
        shutil.copyfile(model_path, staging / "1" / "model.onnx")
        shutil.copyfile(library_path(), staging / LIBRARY_NAME)
        (staging / "config.pbtxt").write_text(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp's folder is private; the others follow the umask already
        os.replace(staging, entry)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return entry
