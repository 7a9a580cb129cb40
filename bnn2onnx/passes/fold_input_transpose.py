"""Conv(Transpose(x, NHWC -> NCHW)) with few channels -> Conv over x viewed as one channel of rows W * C wide.

Keras models take NHWC images, so tf2onnx starts them with a Transpose into the NCHW a Conv reads, which
onnxruntime runs as a pass of its own on one thread before the stem conv. Read in place, an [N, H, W, C] image is
an [N, 1, H, W * C] one in which pixel w's channels are columns w * C .. w * C + C - 1: a KH x KW conv of stride
(SH, SW) over the image is a KH x (KW * C) conv of stride (SH, SW * C) over that view, with weights
w'[o, 0, kh, kw * C + c] = w[o, c, kh, kw] and the left and right pads times C. The same products, summed in
another order (float rounding only). Measured with onnxruntime 1.32 on AVX-512 at 224x224 (Transpose and conv
against Reshape and conv): 3 channels, QuickNet's stem (3x3 stride 2, 16 filters) 1.3-1.5x, BiRealNet's (7x7
stride 2, 64 filters) 1.1-1.2x; 4 and 8 channels 1.2x and 1.4x; 16 channels at 56x56 0.92x. Only images of up to
MAX_CHANNELS channels are rewritten: at 8, onnxruntime's NCHWc block on AVX2, nothing was measured on AVX2.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from bnn2onnx.passes.graph_tools import PassResult, constant, fresh_variable

NHWC_TO_NCHW = [0, 3, 1, 2]
MAX_CHANNELS = 4  # gray, RGB, RGBA


def _image_of(transpose: gs.Node) -> tuple[int, int, int] | None:
    """(H, W, C) of the NHWC tensor a Transpose into NCHW reads, when all three are known and C is small."""
    if transpose.attrs.get("perm") != NHWC_TO_NCHW:
        return None
    shape = transpose.inputs[0].shape
    if shape is None or len(shape) != 4 or not all(isinstance(d, int) for d in shape[1:]):
        return None
    height, width, channels = shape[1:]
    return (height, width, channels) if channels <= MAX_CHANNELS else None


def _foldable_weights(conv: gs.Node, channels: int) -> np.ndarray | None:
    """The weights of a conv that can read the view: a plain conv (constant weights, one group, explicit pads) not
    dilated along the width (its taps would no longer be whole pixels apart in the view); else None."""
    weights = constant(conv.inputs[1]) if len(conv.inputs) > 1 else None
    foldable = (weights is not None and weights.ndim == 4 and weights.shape[1] == channels
                and conv.attrs.get("group", 1) == 1 and conv.attrs.get("auto_pad", "NOTSET") == "NOTSET"
                and list(conv.attrs.get("dilations", [1, 1]))[1] == 1)
    return weights if foldable else None


def _fold(conv: gs.Node, weights: np.ndarray, view: gs.Variable, channels: int) -> None:
    out_c, _, kernel_h, kernel_w = weights.shape
    folded = weights.transpose(0, 2, 3, 1).reshape(out_c, 1, kernel_h, kernel_w * channels)
    conv.inputs[0] = view
    conv.inputs[1] = gs.Constant(f"{conv.name}_weights_channels_last", np.ascontiguousarray(folded))
    stride_h, stride_w = conv.attrs.get("strides", [1, 1])
    top, left, bottom, right = conv.attrs.get("pads", [0, 0, 0, 0])
    conv.attrs.update(kernel_shape=[kernel_h, kernel_w * channels], strides=[stride_h, stride_w * channels],
                      pads=[top, left * channels, bottom, right * channels])


def run(graph: gs.Graph) -> PassResult:
    result = PassResult("fold_input_transpose")
    for transpose in [n for n in graph.nodes if n.op == "Transpose"]:
        image = _image_of(transpose)
        if image is None:
            continue
        height, width, channels = image
        nchw = transpose.outputs[0]
        readers = [n for n in nchw.outputs if n.op == "Conv" and n.inputs[0] is nchw]
        convs = [(conv, weights) for conv in readers if (weights := _foldable_weights(conv, channels)) is not None]
        if not convs:
            continue
        view = fresh_variable(graph, f"{nchw.name}_channels_last", transpose.inputs[0].dtype,
                              [transpose.inputs[0].shape[0], 1, height, width * channels])
        shape = gs.Constant(f"{view.name}_shape", np.array([-1, 1, height, width * channels], np.int64))
        graph.nodes.append(gs.Node("Reshape", f"{transpose.name}_channels_last",
                                   inputs=[transpose.inputs[0], shape], outputs=[view]))
        for conv, weights in convs:
            _fold(conv, weights, view, channels)
            result.rewrites += 1
    return result
