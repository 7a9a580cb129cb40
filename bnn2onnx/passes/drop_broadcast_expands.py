"""op(x, Expand(c, Shape(x))) -> op(x, c) for elementwise ops that broadcast (Add, Sub, Mul, Div).

`bias.expand_as(x)` (ReActNet's learnable shifts) exports as Expand(bias, Shape(x)); the elementwise op
broadcasts c to x's shape by itself, so the Expand changes nothing but hides a per-channel constant from the
passes that fold per-channel arithmetic.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from bnn2onnx.passes.graph_tools import PassResult, producer_op

BROADCASTING_OPS = ("Add", "Sub", "Mul", "Div")


def _expands_to_shape_of(expand: gs.Node, other: gs.Tensor) -> bool:
    """Whether Expand's target shape is `other`'s: Shape(other) itself (as the legacy exporter writes it), or a
    computed shape that shape inference proved equal to other's, symbolic batch included (dynamo)."""
    shape_of = producer_op(expand.inputs[1], "Shape")
    if shape_of is not None:
        return (shape_of.inputs[0] is other and shape_of.attrs.get("start", 0) == 0
                and shape_of.attrs.get("end") is None)
    out = expand.outputs[0].shape
    return out is not None and other.shape is not None and list(out) == list(other.shape) and None not in out


def _expanded_to_other(node: gs.Node, side: int) -> gs.Tensor | None:
    """c when input `side` is Expand(c, shape of the other input) and c broadcasts into that input's rank."""
    expand = producer_op(node.inputs[side], "Expand")
    other = node.inputs[1 - side]
    if expand is None or expand.inputs[0].shape is None or other.shape is None \
            or len(expand.inputs[0].shape) > len(other.shape) or not _expands_to_shape_of(expand, other):
        return None
    return expand.inputs[0]


def run(graph: gs.Graph) -> PassResult:
    result = PassResult("drop_broadcast_expands")
    for node in [n for n in graph.nodes if n.op in BROADCASTING_OPS and len(n.inputs) == 2]:
        for side in (0, 1):
            c = _expanded_to_other(node, side)
            if c is not None:
                node.inputs[side] = c
                result.rewrites += 1
                break
    return result
