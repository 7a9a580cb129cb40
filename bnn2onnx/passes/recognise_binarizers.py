"""Binarizers -> BitUnpack(BitPack(x)): the canonical binarizer, sign with 0 -> +1, as ops that run.

Recognised (each exactly sign(x) with sign(0) = +1):
- larq's quantizers as exported: Sign(Add(Sign(x), c)) with 0 < c < 1 (larq adds 0.1);
- Where(GreaterOrEqual(x, 0), 1, -1) and Where(Less(x, 0), -1, 1).
Not recognised, on purpose: Where(Greater(x, 0), 1, -1) and plain Sign(x), which map 0 elsewhere.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from bnn2onnx.ops import schema
from bnn2onnx.passes.graph_tools import detach, PassResult, bnn_node, constant, fresh_variable, producer_op, scalar
from bnn2onnx.passes.op_shapes import annotate


def _larq_sign_input(node: gs.Node) -> gs.Tensor | None:
    """x for Sign(Add(Sign(x), c)), 0 < c < 1."""
    if node.op != "Sign":
        return None
    add = producer_op(node.inputs[0], "Add")
    if add is None:
        return None
    for sign_side, const_side in ((0, 1), (1, 0)):
        inner = producer_op(add.inputs[sign_side], "Sign")
        c = scalar(constant(add.inputs[const_side]))
        if inner is not None and c is not None and 0 < c < 1:
            return inner.inputs[0]
    return None


def _where_sign_input(node: gs.Node) -> gs.Tensor | None:
    """x for Where(x >= 0, 1, -1) or Where(x < 0, -1, 1)."""
    if node.op != "Where":
        return None
    when_true, when_false = scalar(constant(node.inputs[1])), scalar(constant(node.inputs[2]))
    for compare, expected in (("GreaterOrEqual", (1.0, -1.0)), ("Less", (-1.0, 1.0))):
        test = producer_op(node.inputs[0], compare)
        if test is not None and scalar(constant(test.inputs[1])) == 0.0 and (when_true, when_false) == expected:
            return test.inputs[0]
    return None


def binarize(graph: gs.Graph, x: gs.Tensor, out: gs.Tensor, name: str) -> None:
    """Makes `out` = BitUnpack(BitPack(x)); x must have rank >= 2 and a known dimension 1."""
    packed = fresh_variable(graph, f"{name}_packed", None)
    pack = annotate(bnn_node(schema.BIT_PACK, [x], [packed], f"{name}_pack"))
    unpack = bnn_node(schema.BIT_UNPACK, [packed], [out], f"{name}_unpack", channels=int(x.shape[1]))
    graph.nodes.extend([pack, annotate(unpack)])


def run(graph: gs.Graph) -> PassResult:
    result = PassResult("recognise_binarizers")
    for node in list(graph.nodes):
        x = _larq_sign_input(node) or _where_sign_input(node)
        if x is None:
            continue
        if x.shape is None or len(x.shape) < 2 or not isinstance(x.shape[1], int):
            result.refuse(node, f"binarizer input has unknown rank or channel dimension (shape {x.shape})")
            continue
        out = node.outputs[0]
        detach(node)
        binarize(graph, x, out, node.name or "binarizer")
        result.rewrites += 1
    return result
