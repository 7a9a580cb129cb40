"""Output type and shape of a bnn2onnx node from its inputs and attributes (docs/ops.md). Every pass that creates
one of our nodes annotates its output with this, so the model carries shapes (Netron shows them) and later
passes can read channel counts. Unknown dims stay None."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from bnn2onnx.ops import schema
from bnn2onnx.ops.bitpacking import words_for


def _window(size, pad_begin: int, pad_end: int, kernel, dilation: int, stride: int):
    if not isinstance(size, (int, np.integer)) or not isinstance(kernel, (int, np.integer)):
        return None
    return int((size + pad_begin + pad_end - ((kernel - 1) * dilation + 1)) // stride + 1)


def _words(channels):
    return words_for(int(channels)) if isinstance(channels, (int, np.integer)) else None


def _shape(node: gs.Node) -> list | None:
    x = node.inputs[0].shape
    if x is None:
        return None
    attrs = node.attrs
    if node.op == schema.BIT_PACK:
        return [x[0], *x[2:], _words(x[1])]
    if node.op == schema.BIT_UNPACK:
        return [x[0], attrs["channels"], *x[1:-1]]
    if node.op == schema.BINARY_DENSE:
        out_c = node.inputs[1].shape[0]
        return [x[0], _words(out_c) if attrs.get("packed_output", 0) else out_c]
    packed_in = node.op == schema.BINARY_MAXPOOL2D or node.inputs[0].dtype == np.int32
    height, width = (x[1], x[2]) if packed_in else (x[2], x[3])
    top, left, bottom, right = attrs.get("pads", (0, 0, 0, 0))
    sh, sw = attrs.get("strides", (1, 1))
    dh, dw = attrs.get("dilations", (1, 1))
    if node.op == schema.BINARY_MAXPOOL2D:
        (kh, kw), out_c = attrs["kernel_shape"], attrs["channels"]
    else:
        out_c, kh, kw = node.inputs[1].shape[:3]
    out_h, out_w = _window(height, top, bottom, kh, dh, sh), _window(width, left, right, kw, dw, sw)
    if node.op == schema.BINARY_MAXPOOL2D or attrs.get("packed_output", 0):
        return [x[0], out_h, out_w, _words(out_c)]
    return [x[0], out_c, out_h, out_w]


def packed_output(node: gs.Node) -> bool:
    return node.op in (schema.BIT_PACK, schema.BINARY_MAXPOOL2D) or bool(node.attrs.get("packed_output", 0))


def annotate(node: gs.Node) -> gs.Node:
    """Sets the node's output dtype and shape; returns the node."""
    out = node.outputs[0]
    out.dtype = np.int32 if packed_output(node) else np.float32
    out.shape = _shape(node)
    return node
