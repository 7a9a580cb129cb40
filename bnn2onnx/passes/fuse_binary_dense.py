"""MatMul(bin(x), W) and Gemm(bin(x), W, C) -> BinaryDense(BitPack(x), packed W^T, multiplier s, bias) when
every column of W is +-s (x of rank 2)."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from bnn2onnx.ops import schema
from bnn2onnx.ops.bitpacking import pack_dense_weights
from bnn2onnx.passes.binary_weights import per_channel_magnitude
from bnn2onnx.passes.graph_tools import PassResult, bnn_node, constant, detach, is_binarized
from bnn2onnx.passes.op_shapes import annotate


def _weights_and_bias(node: gs.Node) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
    """([M, K] weights, [M] bias, reason when not convertible)."""
    weights = constant(node.inputs[1])
    if weights is None or weights.ndim != 2:
        return None, None, "weights are not a constant matrix"
    if node.op == "MatMul":
        return weights.T, np.zeros(weights.shape[1], np.float32), None
    attrs = node.attrs
    if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
        return None, None, "Gemm with transA, alpha or beta other than the defaults"
    rows = weights if attrs.get("transB", 0) else weights.T
    bias = constant(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2].name else np.zeros(1, np.float32)
    if bias is None or bias.size not in (1, rows.shape[0]):
        return None, None, "Gemm bias is not a constant scalar or per-output vector"
    return rows, np.broadcast_to(bias.reshape(-1), (rows.shape[0],)).astype(np.float32), None


def _rewrite(graph: gs.Graph, node: gs.Node, result: PassResult) -> None:
    unpack = is_binarized(node.inputs[0])
    if unpack is None:
        return
    if len(node.inputs[0].shape or []) != 2:
        result.refuse(node, f"binarized input of rank {len(node.inputs[0].shape or [])}, not 2")
        return
    rows, bias, reason = _weights_and_bias(node)
    if reason is not None:
        result.refuse(node, reason)
        return
    if rows.shape[1] != int(unpack.attrs["channels"]):
        result.refuse(node, f"weights have {rows.shape[1]} inputs, the binarized input {unpack.attrs['channels']}")
        return
    magnitude, why_not = per_channel_magnitude(rows, 0)
    if magnitude is None:
        result.refuse(node, why_not)
        return
    name = node.name or "dense"
    dense = bnn_node(
        schema.BINARY_DENSE,
        [unpack.inputs[0], gs.Constant(f"{name}_bits", pack_dense_weights(rows)),
         gs.Constant(f"{name}_multiplier", magnitude), gs.Constant(f"{name}_bias", bias)],
        list(node.outputs), name, channels_in=int(unpack.attrs["channels"]))
    detach(node)
    graph.nodes.append(annotate(dense))
    result.rewrites += 1


def run(graph: gs.Graph) -> PassResult:
    result = PassResult("fuse_binary_dense")
    for node in [n for n in graph.nodes if n.op in ("MatMul", "Gemm") and n.domain in (None, "", "ai.onnx")]:
        _rewrite(graph, node, result)
    return result
