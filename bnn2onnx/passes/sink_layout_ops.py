"""Layout ops (Transpose, Reshape and its kin) move above binarizers and cancel:
Transpose(bin(x)) -> bin(Transpose(x)); Reshape(bin(x)) -> bin(Reshape(x)), likewise Unsqueeze, Squeeze, Flatten;
Transpose(Pad(bin(x), value)) -> Pad(Transpose(bin(x)), permuted pads, value), Unsqueeze likewise;
Transpose(Transpose(x)) -> x when the permutations compose to the identity; Reshape(Reshape(x)) -> Reshape(x);
Reshape(x) -> x when the shapes are equal.

tf2onnx leaves every binarizer between Transpose(NCHW -> NHWC) and Transpose(NHWC -> NCHW) (or Reshapes, for
1x1 images) because its transpose optimizer has no rule for Sign. A binarizer is elementwise, so it commutes
with any layout op, and a constant Pad commutes with a permutation of its axes: moving the layout ops above
them is exact; then they cancel and the binary Conv sees its binarizer directly.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from bnn2onnx.passes.graph_tools import (
    PassResult,
    binarized_pad,
    binarizer_input,
    constant,
    detach,
    fresh_variable,
    is_binarized,
    producer_op,
    replace_uses,
)
from bnn2onnx.passes.recognise_binarizers import binarize


def _perm(node: gs.Node) -> list[int] | None:
    perm = node.attrs.get("perm")
    return list(perm) if perm is not None else None


def _transposed(graph: gs.Graph, x: gs.Tensor, perm: list[int], name: str) -> gs.Tensor:
    shape = [x.shape[p] for p in perm] if x.shape is not None else None
    out = fresh_variable(graph, f"{name}_transposed", x.dtype, shape)
    graph.nodes.append(gs.Node("Transpose", f"{name}_transpose", {"perm": perm}, [x], [out]))
    return out


def _sink_through_binarizer(graph: gs.Graph, transpose: gs.Node, perm: list[int]) -> bool:
    unpack = is_binarized(transpose.inputs[0])
    if unpack is None:
        return False
    x = binarizer_input(unpack)
    if x.shape is None or not isinstance(x.shape[perm[1]], int):
        return False
    out = transpose.outputs[0]
    detach(transpose)
    binarize(graph, _transposed(graph, x, perm, transpose.name), out, transpose.name)
    return True


# Ops that only give a tensor's elements another shape (a Conv1D's input reaches its Conv through Unsqueeze).
RESHAPING_OPS = ("Reshape", "Unsqueeze", "Squeeze", "Flatten")


def _sink_reshape_through_binarizer(graph: gs.Graph, reshape: gs.Node) -> bool:
    unpack = is_binarized(reshape.inputs[0])
    out = reshape.outputs[0]
    if unpack is None or out.shape is None or len(out.shape) < 2 or not isinstance(out.shape[1], int):
        return False
    x = binarizer_input(unpack)
    reshaped = fresh_variable(graph, f"{reshape.name}_reshaped", x.dtype, list(out.shape))
    graph.nodes.append(gs.Node(reshape.op, f"{reshape.name}_{reshape.op.lower()}", dict(reshape.attrs),
                               [x, *reshape.inputs[1:]], [reshaped]))
    detach(reshape)
    binarize(graph, reshaped, out, reshape.name)
    return True


def _cancel_reshape(graph: gs.Graph, reshape: gs.Node) -> bool:
    x, out = reshape.inputs[0], reshape.outputs[0]
    # Equal static dims after the batch mean equal batch dims too (same element count), whatever their symbols.
    if x.shape is not None and out.shape is not None and len(x.shape) == len(out.shape) and \
            list(x.shape[1:]) == list(out.shape[1:]) and all(isinstance(d, int) for d in x.shape[1:]):
        replace_uses(graph, out, x)
        detach(reshape)
        return True
    inner = producer_op(x, "Reshape")
    target = constant(reshape.inputs[1])
    if inner is not None and target is not None and not np.any(target == 0):
        reshape.inputs[0] = inner.inputs[0]  # the outer target shape alone decides the result
        return True
    return False


def _repadded(graph: gs.Graph, layout: gs.Node, moved: gs.Tensor, pad: gs.Node, new_pads: np.ndarray) -> None:
    """Replaces `layout` (a layout op applied to `pad`'s output) by the same Pad of `moved` (the layout op applied
    to the Pad's input), with `new_pads`."""
    out = layout.outputs[0]
    detach(layout)
    inputs = [moved, gs.Constant(f"{layout.name}_pads", new_pads.astype(np.int64))] + list(pad.inputs[2:3])
    graph.nodes.append(gs.Node("Pad", f"{layout.name}_pad", {"mode": "constant"}, inputs, [out]))


def _sink_through_pad(graph: gs.Graph, transpose: gs.Node, perm: list[int]) -> bool:
    padded = binarized_pad(transpose.inputs[0])
    if padded is None or padded[1].size != 2 * len(perm):
        return False
    pad, pads = padded
    rank = len(perm)
    new_pads = np.array([pads[p] for p in perm] + [pads[rank + p] for p in perm])
    _repadded(graph, transpose, _transposed(graph, pad.inputs[0], perm, transpose.name), pad, new_pads)
    return True


def _sink_unsqueeze_through_pad(graph: gs.Graph, unsqueeze: gs.Node) -> bool:
    """Unsqueeze(Pad(bin(x), pads, value), axes) -> Pad(Unsqueeze(bin(x), axes), pads with 0 at each new axis,
    value): a Conv1D's +1 padding before tf2onnx's ExpandDims."""
    padded = binarized_pad(unsqueeze.inputs[0])
    axes = constant(unsqueeze.inputs[1]) if len(unsqueeze.inputs) > 1 else unsqueeze.attrs.get("axes")
    if padded is None or axes is None or padded[1].size % 2:
        return False
    pad, pads = padded
    rank = pads.size // 2 + len(np.atleast_1d(axes))
    new_axes = {int(a) % rank for a in np.atleast_1d(axes)}
    begins, ends = iter(pads[:pads.size // 2]), iter(pads[pads.size // 2:])
    new_pads = np.array([0 if a in new_axes else next(begins) for a in range(rank)] +
                        [0 if a in new_axes else next(ends) for a in range(rank)])
    source = pad.inputs[0]
    shape = None
    if source.shape is not None and len(source.shape) + len(new_axes) == rank:
        rest = iter(source.shape)
        shape = [1 if a in new_axes else next(rest) for a in range(rank)]
    moved = fresh_variable(graph, f"{unsqueeze.name}_unsqueezed", source.dtype, shape)
    graph.nodes.append(gs.Node("Unsqueeze", f"{unsqueeze.name}_unsqueeze", dict(unsqueeze.attrs),
                               [source, *unsqueeze.inputs[1:]], [moved]))
    _repadded(graph, unsqueeze, moved, pad, new_pads)
    return True


def _cancel(graph: gs.Graph, transpose: gs.Node, perm: list[int]) -> bool:
    inner = producer_op(transpose.inputs[0], "Transpose")
    if perm == list(range(len(perm))):
        source = transpose.inputs[0]
    elif inner is not None and _perm(inner) is not None and [_perm(inner)[p] for p in perm] == list(range(len(perm))):
        source = inner.inputs[0]
    else:
        return False
    replace_uses(graph, transpose.outputs[0], source)
    detach(transpose)
    return True


def run(graph: gs.Graph) -> PassResult:
    result = PassResult("sink_layout_ops")
    changed = True
    while changed:  # each rewrite moves a layout op strictly upwards or removes one, so this ends
        changed = False
        for node in list(graph.nodes):
            if not node.outputs:
                continue
            if node.op == "Reshape":
                moved = _cancel_reshape(graph, node) or _sink_reshape_through_binarizer(graph, node)
            elif node.op in RESHAPING_OPS:
                moved = _sink_reshape_through_binarizer(graph, node) or \
                    (node.op == "Unsqueeze" and _sink_unsqueeze_through_pad(graph, node))
            elif node.op == "Transpose" and _perm(node) is not None:
                perm = _perm(node)
                moved = _cancel(graph, node, perm) or _sink_through_binarizer(graph, node, perm) or \
                    _sink_through_pad(graph, node, perm)
            else:
                moved = False
            if moved:
                result.rewrites += 1
                changed = True
        graph.cleanup()
    return result
