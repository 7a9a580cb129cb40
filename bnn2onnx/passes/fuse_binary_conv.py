"""Conv(bin(x), W) -> BinaryConv2D(BitPack(x), packed W, multiplier s, bias) when W[o] = +-s[o].

Padding: the Conv's own pads on a binarized input are zero padding (pad_value=0); an explicit constant Pad between
the binarizer and the Conv pads with its value: +1 (larq pad_values=1: pad_value=1), -1 (pad_value=-1) or 0.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from bnn2onnx.ops import schema
from bnn2onnx.ops.bitpacking import pack_conv_weights
from bnn2onnx.passes.binary_weights import per_channel_magnitude
from bnn2onnx.passes.graph_tools import PassResult, binarized_pad, bnn_node, constant, detach, is_binarized, scalar
from bnn2onnx.passes.op_shapes import annotate


def _explicit_padding(x: gs.Tensor) -> tuple[gs.Tensor, list[int], int] | None:
    """(binarized input, [top, left, bottom, right], value) for x = Pad(bin(u), spatial pads, value) with value
    -1, 0 or +1 (larq pad_values=1, F.pad(sign(x), value=-1), ...)."""
    padded = binarized_pad(x)
    if padded is None:
        return None
    pad, pads = padded
    value = scalar(constant(pad.inputs[2])) if len(pad.inputs) > 2 and pad.inputs[2].name else 0.0
    if pads.size != 8 or value not in (-1.0, 0.0, 1.0) or np.any(pads[[0, 1, 4, 5]] != 0):
        return None
    return pad.inputs[0], [int(pads[2]), int(pads[3]), int(pads[6]), int(pads[7])], int(value)


def _rewrite(graph: gs.Graph, conv: gs.Node, result: PassResult) -> None:
    x = conv.inputs[0]
    pads = list(conv.attrs.get("pads", [0, 0, 0, 0]))
    pad_value = 0
    padded = _explicit_padding(x)
    if padded is not None:
        x, explicit, pad_value = padded
        if any(pads) and pad_value != 0:
            result.refuse(conv, f"both {pad_value:+d} padding (Pad) and zero padding (Conv pads) on one input")
            return
        pads = [a + b for a, b in zip(pads, explicit)]
    unpack = is_binarized(x)
    if unpack is None:
        return  # a full-precision conv: nothing to do, not a refusal
    if conv.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        result.refuse(conv, f"auto_pad={conv.attrs['auto_pad']} (explicit pads needed)")
        return
    weights = constant(conv.inputs[1])
    if weights is None:
        result.refuse(conv, "weights are not a constant")
        return
    if weights.ndim != 4:
        result.refuse(conv, f"a {weights.ndim - 2}-D conv: BinaryConv2D computes 2-D convs (and 1-D ones as 2-D)")
        return
    magnitude, why_not = per_channel_magnitude(weights, 0)
    if magnitude is None:
        result.refuse(conv, why_not)
        return
    group = int(conv.attrs.get("group", 1))
    channels_in = int(unpack.attrs["channels"])
    if weights.shape[1] * group != channels_in:
        result.refuse(conv, f"weights {weights.shape} and group={group} do not match {channels_in} input channels")
        return
    bias = constant(conv.inputs[2]) if len(conv.inputs) > 2 else np.zeros(weights.shape[0], np.float32)
    if bias is None:
        result.refuse(conv, "bias is not a constant")
        return
    name = conv.name or "conv"
    node = bnn_node(
        schema.BINARY_CONV2D,
        [unpack.inputs[0], gs.Constant(f"{name}_bits", pack_conv_weights(weights)),
         gs.Constant(f"{name}_multiplier", magnitude), gs.Constant(f"{name}_bias", bias.astype(np.float32))],
        list(conv.outputs), name, channels_in=channels_in, strides=list(conv.attrs.get("strides", [1, 1])),
        dilations=list(conv.attrs.get("dilations", [1, 1])), pads=pads, group=group if group != 1 else None,
        pad_value=pad_value)
    detach(conv)
    graph.nodes.append(annotate(node))
    result.rewrites += 1


def run(graph: gs.Graph) -> PassResult:
    result = PassResult("fuse_binary_conv")
    for conv in [n for n in graph.nodes if n.op == "Conv" and n.domain in (None, "", "ai.onnx")]:
        _rewrite(graph, conv, result)
    return result
