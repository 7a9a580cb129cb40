"""BinaryConv2D/BinaryDense(float output) -> BatchNormalization / Mul / Add / Sub / Div by per-channel constants
-> Relu -> more of them: folded into the op's multiplier and bias, its activation, and the post_multiplier and
post_bias applied after the activation (docs/ops.md), while each intermediate has no other reader."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from bnn2onnx.ops import schema
from bnn2onnx.passes.graph_tools import PassResult, constant, detach, only_consumer
from bnn2onnx.passes.per_channel_ops import affine, variable_input

Affine = tuple[np.ndarray, np.ndarray]


def _compose(first: Affine, then: Affine) -> Affine:
    """then(first(v)) as one (scale, shift)."""
    return first[0] * then[0], first[1] * then[0] + then[1]


def _fold_into(graph: gs.Graph, node: gs.Node) -> int:
    out = node.outputs[0]
    name = node.name or node.op
    channels = int(constant(node.inputs[2]).shape[0])
    rank = 4 if node.op == schema.BINARY_CONV2D else 2
    before: Affine = (constant(node.inputs[2]).astype(np.float64), constant(node.inputs[3]).astype(np.float64))
    after: Affine | None = None  # the affine map after the activation, once there is one
    folded = 0
    while True:
        follower = only_consumer(graph, out)
        if follower is None or variable_input(follower) is not out or len(follower.outputs) != 1:
            break
        relu = node.attrs.get("activation", "NONE") == "RELU"
        if follower.op == "Relu":
            if relu:
                break
            node.attrs["activation"] = "RELU"
        else:
            scale_shift = affine(follower, channels, rank)
            if scale_shift is None:
                break
            if not relu:
                before = _compose(before, scale_shift)
            else:
                after = scale_shift if after is None else _compose(after, scale_shift)
        # The layer takes over the follower's output tensor, so the name the source model gave it survives.
        out = follower.outputs[0]
        detach(follower)
        node.outputs[0] = out
        folded += 1
    if folded:
        node.inputs[2] = gs.Constant(f"{name}_multiplier_folded", before[0].astype(np.float32))
        node.inputs[3] = gs.Constant(f"{name}_bias_folded", before[1].astype(np.float32))
    if after is not None:
        node.inputs.extend([gs.Constant(f"{name}_post_multiplier", after[0].astype(np.float32)),
                            gs.Constant(f"{name}_post_bias", after[1].astype(np.float32))])
    return folded


def run(graph: gs.Graph) -> PassResult:
    result = PassResult("fold_output_affine")
    for node in list(graph.nodes):
        if node.op in (schema.BINARY_CONV2D, schema.BINARY_DENSE) and not node.attrs.get("packed_output", 0) \
                and len(node.inputs) == 4 and constant(node.inputs[2]) is not None \
                and constant(node.inputs[3]) is not None:
            result.rewrites += _fold_into(graph, node)
    return result
