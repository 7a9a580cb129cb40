"""MaxPool(bin(x)) -> bin(MaxPool(x)): a max-pooling of binarized values moves above the binarizer.

Exact because the binarizer (0 -> +1) is monotonic: the sign of a window's maximum is the maximum of its signs,
whatever the pooling's pads, strides, dilations or rounding (ONNX MaxPool never takes a padded position).
BinaryNet-style networks (FINN's and Brevitas's CNV) binarize, then pool, then convolve; with the pooling above
the binarizer the next Conv reads the binarizer directly and becomes binary, and fuse_binary_maxpool turns the
pooling into a BinaryMaxPool2D of packed bits.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from bnn2onnx.passes.graph_tools import PassResult, binarizer_input, detach, fresh_variable, is_binarized
from bnn2onnx.passes.recognise_binarizers import binarize


def _lift(graph: gs.Graph, pool: gs.Node) -> bool:
    unpack = is_binarized(pool.inputs[0]) if pool.inputs else None
    out = pool.outputs[0] if len(pool.outputs) == 1 else None  # no Indices output: those are the float's
    if unpack is None or out is None or out.shape is None or len(out.shape) < 2 or not isinstance(out.shape[1], int):
        return False
    x = binarizer_input(unpack)
    pooled = fresh_variable(graph, f"{pool.name}_pooled", x.dtype, list(out.shape))
    graph.nodes.append(gs.Node("MaxPool", f"{pool.name}_float", dict(pool.attrs), [x], [pooled]))
    detach(pool)
    binarize(graph, pooled, out, pool.name)
    return True


def run(graph: gs.Graph) -> PassResult:
    result = PassResult("pool_before_binarizer")
    for pool in [n for n in graph.nodes if n.op == "MaxPool"]:
        if _lift(graph, pool):
            result.rewrites += 1
    graph.cleanup()
    return result
