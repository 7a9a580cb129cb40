"""Conv over one spatial axis reading a binarizer -> Squeeze(Conv(Unsqueeze(x, 2), W[:, :, None, :]), 2).

A 1-D conv (PyTorch's Conv1d) is a 2-D conv over a height of 1. Written that way, the Unsqueeze sinks above the
binarizer (sink_layout_ops) and the conv becomes a BinaryConv2D, as a Keras Conv1D does, which tf2onnx already
writes as Unsqueeze -> Conv -> Squeeze. Float 1-D convs are left as they are.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from bnn2onnx.passes.graph_tools import PassResult, binarized_pad, constant, detach, fresh_variable, is_binarized

# Squeeze and Unsqueeze take their axes as an input from opset 13, as an attribute before.
AXES_AS_INPUT_OPSET = 13


def _axis_2(graph: gs.Graph, op: str, x: gs.Tensor, out: gs.Tensor, name: str) -> gs.Node:
    if graph.opset >= AXES_AS_INPUT_OPSET:
        return gs.Node(op, name, {}, [x, gs.Constant(f"{name}_axes", np.array([2], np.int64))], [out])
    return gs.Node(op, name, {"axes": [2]}, [x], [out])


def _rewrite(graph: gs.Graph, conv: gs.Node) -> str | None:
    """Rewrites `conv` as a 2-D conv; returns why not, or None."""
    if conv.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        return f"1-D conv with auto_pad {conv.attrs['auto_pad']}: give explicit pads"
    x, weights, bias, out = conv.inputs[0], constant(conv.inputs[1]), list(conv.inputs[2:]), conv.outputs[0]
    name = conv.name or "conv1d"
    unsqueezed = fresh_variable(graph, f"{name}_unsqueezed", x.dtype,
                                [x.shape[0], x.shape[1], 1, x.shape[2]] if x.shape is not None else None)
    conv2d_out = fresh_variable(graph, f"{name}_2d", out.dtype,
                                [out.shape[0], out.shape[1], 1, out.shape[2]] if out.shape is not None else None)
    attrs = dict(conv.attrs)
    for key in ("kernel_shape", "strides", "dilations"):
        if key in attrs:
            attrs[key] = [1, *attrs[key]]
    if "pads" in attrs:
        begin, end = attrs["pads"]
        attrs["pads"] = [0, begin, 0, end]
    detach(conv)
    graph.nodes.extend([
        _axis_2(graph, "Unsqueeze", x, unsqueezed, f"{name}_unsqueeze"),
        gs.Node("Conv", name, attrs, [unsqueezed, gs.Constant(f"{name}_weights_2d", weights[:, :, None, :]),
                                      *bias], [conv2d_out]),
        _axis_2(graph, "Squeeze", conv2d_out, out, f"{name}_squeeze")])
    return None


def run(graph: gs.Graph) -> PassResult:
    result = PassResult("conv1d_as_conv2d")
    for conv in [n for n in graph.nodes if n.op == "Conv" and len(n.inputs) > 1]:
        weights = constant(conv.inputs[1])
        if weights is None or weights.ndim != 3 or (is_binarized(conv.inputs[0]) is None and
                                                    binarized_pad(conv.inputs[0]) is None):
            continue
        reason = _rewrite(graph, conv)
        if reason is None:
            result.rewrites += 1
        else:
            result.refuse(conv, reason)
    return result
