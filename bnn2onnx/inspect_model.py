"""Per-layer accounting of a converted model: parameters by precision, MACs by precision, memory.

Counted the way larq.models.summary counts a Keras model, so the totals can be compared: a binary layer's
weights are 1-bit parameters (the packed words' padding bits are not parameters) and its MACs are 1-bit; every
other initializer element (float, or int32 thresholds) is a 32-bit parameter; a float Conv/MatMul/Gemm does
(weights x output pixels) 32-bit MACs. 1-bit parameters and both MAC counts equal larq's; 32-bit parameters
equal larq's minus what tf2onnx folded away (a batch norm after a float conv becomes that conv's bias).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from bnn2onnx.ops import schema

FLOAT_MAC_OPS = ("Conv", "MatMul", "Gemm")


@dataclass
class LayerRow:
    name: str
    op: str
    output_shape: list
    binary_params: int = 0
    float_params: int = 0
    binary_macs: int = 0
    float_macs: int = 0
    packed_channels: int = 0  # a binary layer with packed output: its channels (the shape counts 32-bit words)

    @property
    def memory_bytes(self) -> float:
        return self.binary_params / 8 + self.float_params * 4


def _parameter_inputs(node: onnx.NodeProto, initializers: dict[str, np.ndarray]) -> list[str]:
    """A binary layer's per-channel inputs (2 on) that hold parameters: not an identity post affine map (ones and
    zeros), which the converter writes before a residual only so that no input is skipped (fuse_residual_add.py)."""
    names = [name for name in node.input[2:] if name in initializers]
    post = node.input[4:6]
    if len(post) == 2 and all(n in initializers for n in post) and np.all(initializers[post[0]] == 1) and \
            np.all(initializers[post[1]] == 0):
        names = [name for name in names if name not in post]
    return names


def short_names(names: list[str]) -> list[str]:
    """Layer names that fit a narrow table: the path components every name starts with (tf2onnx's model name) and
    the last one (the framework op that computes the layer, e.g. `QuantConv2D`, `MatMul`) left out."""
    paths = [name.strip("/").split("/") for name in names]
    common = 0
    while len(paths) > 1 and all(len(p) > common + 1 and p[common] == paths[0][common] for p in paths):
        common += 1
    return ["/".join(p[common:-1] if len(p) - common > 1 else p[common:]) for p in paths]


def compact(count: int) -> str:
    """A count in at most 5 characters: 950, 13.8k, 1.33M, 2.1G."""
    units = ((10**3, "k"), (10**6, "M"), (10**9, "G"), (10**12, "T"))
    text = str(count)
    for limit, suffix in units:
        if count >= limit or float(text) >= 1000:  # also 999,999: 1000k reads as 1M
            text = f"{count / limit:.3g}"
            if float(text) < 1000:
                return text + suffix
    return text


def shape_text(shape: list, batch_first: bool = True) -> str:
    """`32×8×8` for [batch, 32, 8, 8]: every tensor of a converted model has the batch first."""
    dims = shape[1:] if batch_first and shape else shape
    return "×".join(str(d) for d in dims)


def output_text(row: LayerRow) -> str:
    """The output shape without the batch; a packed output ([N, OH, OW, words]) by its channels, marked `b`
    (bits): `64×8×8b`."""
    if row.packed_channels and len(row.output_shape) >= 2:
        return shape_text([None, row.packed_channels, *row.output_shape[1:-1]]) + "b"
    return shape_text(row.output_shape)


def tensor_shapes(model: onnx.ModelProto) -> dict[str, list]:
    """Every input's, output's and inferred tensor's dims: ints, or the dimension's name ("?" when it has none)."""
    inferred = model.graph.value_info
    shapes = {}
    for value in [*model.graph.input, *model.graph.output, *inferred]:
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
    return shapes


def _pixels(shape: list, packed: bool) -> int:
    spatial = shape[1:-1] if packed else shape[2:]
    return int(np.prod([d for d in spatial if isinstance(d, int)])) if spatial else 1


def layer_rows(model: onnx.ModelProto) -> list[LayerRow]:
    initializers = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    shapes = tensor_shapes(model)
    rows = []
    for node in model.graph.node:
        consts = [initializers[name] for name in node.input if name in initializers]
        if not consts:
            continue
        out_shape = shapes.get(node.output[0], [])
        row = LayerRow(node.name or node.op_type, node.op_type, out_shape)
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type in (schema.BINARY_CONV2D, schema.BINARY_DENSE):
            weights = initializers[node.input[1]]
            channels_in = attrs["channels_in"] // attrs.get("group", 1)
            row.binary_params = int(np.prod(weights.shape[:-1])) * channels_in
            row.float_params = sum(initializers[name].size for name in _parameter_inputs(node, initializers))
            packed = bool(attrs.get("packed_output", 0))
            row.packed_channels = weights.shape[0] if packed else 0
            pixels = _pixels(out_shape, packed) if node.op_type == schema.BINARY_CONV2D else 1
            row.binary_macs = row.binary_params * pixels
        else:
            row.float_params = sum(c.size for c in consts if c.dtype.kind == "f")
            if node.op_type in FLOAT_MAC_OPS and len(node.input) > 1 and node.input[1] in initializers:
                weight_count = initializers[node.input[1]].size
                pixels = _pixels(out_shape, False) if node.op_type == "Conv" else 1
                row.float_macs = weight_count * pixels
        if row.binary_params or row.float_params:
            rows.append(row)
    return rows
