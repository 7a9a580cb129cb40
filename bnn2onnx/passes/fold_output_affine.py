"""BinaryConv2D/BinaryDense(float output) -> BatchNormalization / Mul / Add / Sub / Div by per-channel constants
-> Relu: folded into the op's multiplier, bias and activation, while each intermediate has no other reader."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from bnn2onnx.ops import schema
from bnn2onnx.passes.graph_tools import PassResult, constant, detach, only_consumer
from bnn2onnx.passes.per_channel_ops import affine, variable_input


def _fold_into(graph: gs.Graph, node: gs.Node) -> int:
    out = node.outputs[0]
    channels = int(constant(node.inputs[2]).shape[0])
    rank = 4 if node.op == schema.BINARY_CONV2D else 2
    multiplier = constant(node.inputs[2]).astype(np.float64)
    bias = constant(node.inputs[3]).astype(np.float64)
    folded = 0
    while node.attrs.get("activation", "NONE") == "NONE":
        follower = only_consumer(graph, out)
        if follower is None or variable_input(follower) is not out or len(follower.outputs) != 1:
            break
        if follower.op == "Relu":
            node.attrs["activation"] = "RELU"
        else:
            scale_shift = affine(follower, channels, rank)
            if scale_shift is None:
                break
            multiplier, bias = multiplier * scale_shift[0], bias * scale_shift[0] + scale_shift[1]
        # The layer takes over the follower's output tensor, so the name the source model gave it survives.
        out = follower.outputs[0]
        detach(follower)
        node.outputs[0] = out
        folded += 1
    if folded:
        name = node.name or node.op
        node.inputs[2] = gs.Constant(f"{name}_multiplier_folded", multiplier.astype(np.float32))
        node.inputs[3] = gs.Constant(f"{name}_bias_folded", bias.astype(np.float32))
    return folded


def run(graph: gs.Graph) -> PassResult:
    result = PassResult("fold_output_affine")
    for node in list(graph.nodes):
        if node.op in (schema.BINARY_CONV2D, schema.BINARY_DENSE) and not node.attrs.get("packed_output", 0) \
                and constant(node.inputs[2]) is not None and constant(node.inputs[3]) is not None:
            result.rewrites += _fold_into(graph, node)
    return result
