"""Binarizers -> BitUnpack(BitPack(x)): the canonical binarizer, sign with 0 -> +1, as ops that run.

Recognised, each exactly sign(x) with sign(0) = +1:
- larq's quantizers as exported: Sign(Add(Sign(x), c)) with 0 < c < 1 (larq adds 0.1);
- Where(x >= 0, 1, -1) and Where(x < 0, -1, 1), the constants also as ones_like(x) writes them.
Recognised with a difference at 0, reported as a deviation: plain Sign(x), PyTorch's sign, which maps 0 to 0. A
binary layer has no third value; 0 becomes +1 (docs/ops.md), which changes a result only when a binarized value is
exactly 0. Verification counts those zeros (`verification.py`).
- any other elementwise spelling a conv or dense layer reads, found by evaluating it on probe values
  (evaluated_binarizers.py).
Not recognised, on purpose: Where(x > 0, 1, -1), which maps 0 to -1; and a plain Sign of a tensor that is 0 for
whole ranges of inputs rather than at single points, where 0 is a third value and not a rare tie: a non-negative
tensor (Sign(Relu(x)) is larq's ste_heaviside, 0 or 1) or a sum of rounded values (larq's ste_tern, -1, 0 or 1).
A binarizer's input Clip(u, lo, hi) with lo < 0 < hi (Hardtanh before the sign) has the sign of u, so u is
binarized: the clip would only hide the float chain from the threshold pass.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from bnn2onnx.ops import schema
from bnn2onnx.passes.evaluated_binarizers import ELEMENTWISE, evaluated_sign_input, feeds_a_layer
from bnn2onnx.passes.graph_tools import (
    PassResult,
    bnn_node,
    constant,
    detach,
    fresh_variable,
    producer,
    producer_op,
    scalar,
    uniform_value,
)
from bnn2onnx.passes.op_shapes import annotate

ZERO_TO_PLUS_ONE = "sign(0) = 0 in the source, +1 in the binary layers (verification counts exact zeros)"


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
    when_true, when_false = uniform_value(node.inputs[1]), uniform_value(node.inputs[2])
    for compare, expected in (("GreaterOrEqual", (1.0, -1.0)), ("Less", (-1.0, 1.0))):
        test = producer_op(node.inputs[0], compare)
        if test is not None and uniform_value(test.inputs[1]) == 0.0 and (when_true, when_false) == expected:
            return test.inputs[0]
    return None


# Ops whose output is never negative; ops that round to integers, 0 for a whole interval of inputs; ops whose
# outputs are integers (signs, and binarizers already made canonical, BitUnpack); ops whose outputs are some of
# their input's values.
NON_NEGATIVE_OPS = ("Relu", "Abs", "Sigmoid", "Softplus", "Exp", "Sqrt")
ROUNDING_OPS = ("Round", "Floor", "Ceil")
INTEGER_OPS = (*ROUNDING_OPS, "Sign", schema.BIT_UNPACK)
SELECTING_OPS = ("Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "MaxPool")


def _source_op(x: gs.Tensor) -> gs.Node | None:
    """The op that computes x's values, past ops that only select or move them."""
    source = producer(x)
    while source is not None and source.op in SELECTING_OPS:
        source = producer(source.inputs[0])
    return source


def _zero_is_a_third_value(x: gs.Tensor) -> str | None:
    """Why Sign(x), mapping 0 to 0, has three values rather than two with rare ties at 0, else None."""
    source = _source_op(x)
    if source is None:
        return None
    clip_floor = scalar(constant(source.inputs[1])) if source.op == "Clip" and len(source.inputs) > 1 and \
        source.inputs[1].name else None
    if source.op in NON_NEGATIVE_OPS or (clip_floor is not None and clip_floor >= 0):
        return (f"sign of a non-negative tensor ({source.op}): its values are 0 and 1, not -1 and +1, so the layers "
                "reading it stay float")
    integers = all(constant(i) is not None or getattr(_source_op(i), "op", None) in INTEGER_OPS for i in source.inputs)
    if source.op in ROUNDING_OPS or (source.op in ("Add", "Sub") and integers):
        return (f"sign of rounded values ({source.op}): 0 is a third value (a ternary activation), not a rare tie, "
                "so the layers reading it stay float")
    return None


def _sign_preserving_source(x: gs.Tensor) -> gs.Tensor:
    """u for x = Clip(u, lo, hi) with lo < 0 < hi (repeatedly), else x."""
    clip = producer_op(x, "Clip")
    while clip is not None and len(clip.inputs) == 3 and clip.inputs[1].name and clip.inputs[2].name:
        lo, hi = scalar(constant(clip.inputs[1])), scalar(constant(clip.inputs[2]))
        if lo is None or hi is None or not lo < 0 < hi:
            break
        x = clip.inputs[0]
        clip = producer_op(x, "Clip")
    return x


def binarize(graph: gs.Graph, x: gs.Tensor, out: gs.Tensor, name: str) -> None:
    """Makes `out` = BitUnpack(BitPack(x)); x must have rank >= 2 and a known dimension 1."""
    packed = fresh_variable(graph, f"{name}_packed", None)
    pack = annotate(bnn_node(schema.BIT_PACK, [x], [packed], f"{name}_pack"))
    unpack = bnn_node(schema.BIT_UNPACK, [packed], [out], f"{name}_unpack", channels=int(x.shape[1]))
    graph.nodes.extend([pack, annotate(unpack)])


def _replace(graph: gs.Graph, node: gs.Node, x: gs.Tensor, result: PassResult) -> gs.Tensor | None:
    """Replaces the binarizer `node` of x by the canonical one; returns the tensor it binarizes."""
    x = _sign_preserving_source(x)
    if x.dtype is not None and np.dtype(x.dtype).kind != "f":
        result.refuse(node, f"binarizer input is not float ({np.dtype(x.dtype)})")
        return None
    if x.shape is None or len(x.shape) < 2 or not isinstance(x.shape[1], int):
        result.refuse(node, f"binarizer input has unknown rank or channel dimension (shape {x.shape})")
        return None
    out = node.outputs[0]
    detach(node)
    binarize(graph, x, out, node.name or "binarizer")
    result.rewrites += 1
    return x


def run(graph: gs.Graph) -> PassResult:
    result = PassResult("recognise_binarizers")
    for node in list(graph.nodes):
        x = _larq_sign_input(node) or _where_sign_input(node)
        if x is not None:
            _replace(graph, node, x, result)
    graph.cleanup()
    # Any other spelling of sign that a layer reads, found by evaluating it (evaluated_binarizers.py); before
    # plain Signs, which such spellings often contain.
    for node in list(graph.nodes):
        y = node.outputs[0] if node.outputs else None
        if node.op in ELEMENTWISE and y is not None and feeds_a_layer(y):
            x = evaluated_sign_input(graph, y)
            if x is not None:
                _replace(graph, node, x, result)
    graph.cleanup()  # the inner Signs of binarizers are gone: every Sign left is a plain one
    for node in [n for n in graph.nodes if n.op == "Sign" and constant(n.inputs[0]) is None]:
        if (reason := _zero_is_a_third_value(node.inputs[0])) is not None:
            result.refuse(node, reason)
            continue
        x = _replace(graph, node, node.inputs[0], result)
        if x is not None:
            result.deviations.append((x.name, ZERO_TO_PLUS_ONE))
    return result
