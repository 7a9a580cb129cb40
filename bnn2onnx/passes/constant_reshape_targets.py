"""Reshape(x, Concat(..., Unsqueeze(Gather(Shape(x), i)) at position i, ...)) -> Reshape(x, [..., 0, ...]).

PyTorch's `x.view(x.size(0), -1)` exports as a target shape computed from x's own shape. With a dynamic batch,
shape inference cannot see through that and leaves the flattened width unknown, so the binary dense layer after
it cannot be built. Reshape's target 0 means "copy this dimension of the input": the same reshape, with a
constant target that shape inference resolves.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from bnn2onnx.passes.graph_tools import PassResult, constant, producer_op, scalar


def _copied_dim(part: gs.Tensor, x: gs.Tensor) -> int | None:
    """i when `part` is x's dimension i as a 1-element vector: Unsqueeze(Gather(Shape(x), i)) or
    Gather(Shape(x), [i])."""
    unsqueeze = producer_op(part, "Unsqueeze")
    gather = producer_op(unsqueeze.inputs[0] if unsqueeze is not None else part, "Gather")
    if gather is None or gather.attrs.get("axis", 0) != 0:
        return None
    shape_of = producer_op(gather.inputs[0], "Shape")
    index = scalar(constant(gather.inputs[1]))
    if shape_of is None or shape_of.inputs[0] is not x or shape_of.attrs.get("start", 0) != 0 or index is None:
        return None
    return int(index)


def _constant_target(reshape: gs.Node) -> np.ndarray | None:
    concat = producer_op(reshape.inputs[1], "Concat")
    if concat is None or reshape.attrs.get("allowzero", 0) != 0:
        return None
    target: list[int] = []
    for part in concat.inputs:
        value = constant(part)
        if value is not None and value.ndim == 1 and not np.any(value == 0):
            target.extend(int(v) for v in value)
        elif _copied_dim(part, reshape.inputs[0]) == len(target):
            target.append(0)
        else:
            return None
    return np.array(target, np.int64)


def run(graph: gs.Graph) -> PassResult:
    result = PassResult("constant_reshape_targets")
    for reshape in [n for n in graph.nodes if n.op == "Reshape"]:
        target = _constant_target(reshape)
        if target is not None:
            reshape.inputs[1] = gs.Constant(f"{reshape.name}_target", target)
            result.rewrites += 1
    return result
