"""QONNX frontend: Brevitas' export_qonnx output -> canonical float ONNX that onnxruntime runs.

QONNX's binary quantizer is BipolarQuant(x, scale) = where(x / scale >= 0, +1, -1) * scale (0 -> +1). With a
constant positive scale, x / scale >= 0 exactly when x >= 0 (x / scale can round to -0 only for |x| below
scale * 2^-149, far under any activation or weight a model computes), so it becomes the standard
Where(x >= 0, 1, -1), times the scale unless that is 1: weights then fold into +-scale, activations are the
binarizer the passes recognise. Other QONNX ops (multi-bit Quant, Trunc, MultiThreshold) are refused: they are
not binary.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from bnn2onnx.errors import ConversionError

QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general")


def is_qonnx(model: onnx.ModelProto) -> bool:
    return any(node.domain in QONNX_DOMAINS for node in model.graph.node)


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def _lowered(node: onnx.NodeProto, scale: np.ndarray, index: int) -> list[onnx.NodeProto]:
    x, (out,) = node.input[0], node.output
    prefix = f"{node.name or 'bipolar_quant'}_{index}"
    zero, plus, minus = (helper.make_tensor(f"{prefix}_{name}", onnx.TensorProto.FLOAT, [], [value])
                         for name, value in (("zero", 0.0), ("plus", 1.0), ("minus", -1.0)))
    nodes = [helper.make_node("Constant", [], [c.name], value=c) for c in (zero, plus, minus)]
    signs = out if np.all(scale == 1) else f"{prefix}_signs"
    nodes += [helper.make_node("GreaterOrEqual", [x, zero.name], [f"{prefix}_nonnegative"]),
              helper.make_node("Where", [f"{prefix}_nonnegative", plus.name, minus.name], [signs],
                               name=node.name)]
    if signs != out:
        nodes.append(helper.make_node("Mul", [signs, node.input[1]], [out], name=f"{prefix}_scale"))
    return nodes


def lower_qonnx(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with every BipolarQuant as standard ONNX; a QONNX op that is not binary raises."""
    constants = _constants(model)
    nodes: list[onnx.NodeProto] = []
    for index, node in enumerate(model.graph.node):
        if node.domain not in QONNX_DOMAINS:
            nodes.append(node)
            continue
        if node.op_type != "BipolarQuant":
            raise ConversionError(f"QONNX {node.op_type} ({node.name or 'unnamed'}) is not supported: bnn2onnx "
                                  "converts binary networks (BipolarQuant)")
        scale = constants.get(node.input[1])
        if scale is None or scale.size == 0 or not np.all(scale > 0):
            raise ConversionError(f"BipolarQuant {node.name or node.output[0]!r}: its scale must be a positive "
                                  "constant")
        nodes.extend(_lowered(node, scale, index))
    lowered = onnx.ModelProto()
    lowered.CopyFrom(model)
    del lowered.graph.node[:]
    lowered.graph.node.extend(nodes)
    kept = [o for o in lowered.opset_import if o.domain not in QONNX_DOMAINS]
    del lowered.opset_import[:]
    lowered.opset_import.extend(kept)
    return lowered
