"""Straight-through estimators -> their forward value: Add(Sub(s, p), p) -> s and Add(p, Sub(s, p)) -> s.

PyTorch BNN code gives a binarizer the gradient of a surrogate p and the value of s with `p + (s - p).detach()`
(the detach trick, p = clamp(x, -1, 1)) or `s.detach() - p.detach() + p` (Bi-Real Net's polynomial
approximation, and its scaled weights); exporters drop `detach`, which leaves the arithmetic. The value is s by
construction: the surrogate only exists for training. Rewriting it to s before anything else lets the binarizer
and weight passes see the sign itself (and computes s exactly where float arithmetic on s - p + p could be off by
an ulp).
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from bnn2onnx.passes.graph_tools import PassResult, producer_op, replace_uses


def _forward_value(add: gs.Node) -> gs.Tensor | None:
    """s when `add` computes (s - p) + p or p + (s - p) for one and the same tensor p."""
    for sub_side, other_side in ((0, 1), (1, 0)):
        sub = producer_op(add.inputs[sub_side], "Sub")
        if sub is not None and sub.inputs[1] is add.inputs[other_side]:
            return sub.inputs[0]
    return None


def run(graph: gs.Graph) -> PassResult:
    result = PassResult("cancel_straight_through")
    for add in [n for n in graph.nodes if n.op == "Add" and len(n.inputs) == 2]:
        value = _forward_value(add)
        if value is None or value.shape is None or value.shape != add.outputs[0].shape:
            continue  # s must already have the sum's shape: broadcasting would change the value's shape
        replace_uses(graph, add.outputs[0], value)
        result.rewrites += 1
    return result
