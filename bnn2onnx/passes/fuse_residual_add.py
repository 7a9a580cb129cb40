"""BinaryConv2D/BinaryDense(float output) -> Add(with r): the Add becomes the layer's residual input (docs/ops.md),
so a shortcut's sum is made in the layer's output pass instead of another pass over the tensor. Only when r is a
float32 tensor of exactly the output's shape (no broadcasting). The Add must be the output's only reader, so r
cannot be computed from the output (that would make a cycle)."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from bnn2onnx.ops import schema
from bnn2onnx.passes.graph_tools import PassResult, detach, only_consumer

RESIDUAL_INPUT = 6


def _known_shape(tensor: gs.Tensor) -> tuple | None:
    """The tensor's shape if every dimension is a number or a named symbol."""
    shape = tensor.shape
    if shape is None or any(d is None or (isinstance(d, str) and not d) for d in shape):
        return None
    return tuple(shape)


def _fuse(graph: gs.Graph, node: gs.Node, result: PassResult) -> None:
    out = node.outputs[0]
    add = only_consumer(graph, out)
    if add is None or add.op != "Add" or len(add.inputs) != 2 or add.inputs[0] is add.inputs[1]:
        return
    residual = add.inputs[1] if add.inputs[0] is out else add.inputs[0]
    shape = _known_shape(out)
    if shape is None or _known_shape(residual) != shape or _known_shape(add.outputs[0]) != shape \
            or residual.dtype != np.float32:
        result.refuse(add, f"Add's other input {residual.name} is not known to be float32 of the layer's output "
                           f"shape {out.shape} (broadcasting stays a separate Add)")
        return
    if len(node.inputs) < RESIDUAL_INPUT:
        # An identity post affine map rather than skipped inputs (empty names): onnxruntime 1.17-1.23 crash creating
        # a session for a custom op whose optional inputs are skipped. y * 1 + 0 is y (a -0.0 becomes +0.0,
        # which no sign or sum tells apart).
        channels = node.inputs[2].shape[0] if node.inputs[2].shape else None
        if not isinstance(channels, int):
            result.refuse(add, "the layer's output channels are unknown")
            return
        while len(node.inputs) > 4:  # (onnx-graphsurgeon's input list has no slice deletion)
            node.inputs.pop()
        node.inputs.extend([gs.Constant(f"{node.name}_post_multiplier", np.ones(channels, np.float32)),
                            gs.Constant(f"{node.name}_post_bias", np.zeros(channels, np.float32))])
    node.inputs.append(residual)
    node.outputs[0] = add.outputs[0]
    detach(add)
    result.rewrites += 1


def run(graph: gs.Graph) -> PassResult:
    result = PassResult("fuse_residual_add")
    for node in list(graph.nodes):
        if node.op in (schema.BINARY_CONV2D, schema.BINARY_DENSE) and not node.attrs.get("packed_output", 0) \
                and len(node.inputs) <= RESIDUAL_INPUT:
            _fuse(graph, node, result)
    return result
