"""The per-output-channel elementwise ops that may follow a binary layer (batch norm and friends), shared by
fold_output_affine (folds them into multiplier/bias) and fuse_threshold_output (evaluates them exactly)."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from bnn2onnx.ops import schema
from bnn2onnx.passes.graph_tools import constant, only_consumer

AFFINE_OPS = ("BatchNormalization", "Mul", "Add", "Sub", "Div")
CHAIN_OPS = AFFINE_OPS + ("Relu",)


def per_channel(value: np.ndarray | None, channels: int, rank: int) -> np.ndarray | None:
    """`value` as a [channels] vector if it broadcasts per channel (axis 1) against a rank-`rank` tensor."""
    if value is None or value.ndim > rank:
        return None
    shape = (1,) * (rank - value.ndim) + value.shape
    if any(d != 1 for i, d in enumerate(shape) if i != 1) or shape[1] not in (1, channels):
        return None
    return np.broadcast_to(value.reshape(-1), (channels,)).astype(np.float64)


def _vector(value: np.ndarray | None, channels: int) -> np.ndarray | None:
    if value is None or value.size not in (1, channels):
        return None
    return np.broadcast_to(value.reshape(-1), (channels,)).astype(np.float64)


def variable_input(node: gs.Node) -> gs.Tensor | None:
    """The one non-constant input of a chain op (its data input), if its other inputs are all constants."""
    if node.op in ("BatchNormalization", "Relu"):
        others = node.inputs[1:]
        return node.inputs[0] if all(constant(t) is not None for t in others) else None
    variables = [t for t in node.inputs if constant(t) is None]
    return variables[0] if len(variables) == 1 else None


def affine(node: gs.Node, channels: int, rank: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(scale, shift) with node(v) = scale * v + shift per channel, or None if the node is not of that form."""
    if node.op == "BatchNormalization":
        if len(node.outputs) != 1 or node.attrs.get("training_mode", 0):
            return None
        # BatchNormalization's statistics are [C] vectors over axis 1 by definition, whatever the data's rank.
        gamma, beta, mean, var = (_vector(constant(t), channels) for t in node.inputs[1:5])
        if any(v is None for v in (gamma, beta, mean, var)):
            return None
        scale = gamma / np.sqrt(var + node.attrs.get("epsilon", 1e-5))
        return scale, beta - mean * scale
    x = variable_input(node)
    if x is None or node.op not in AFFINE_OPS:
        return None
    other = next(t for t in node.inputs if t is not x)
    c = per_channel(constant(other), channels, rank)
    if c is None:
        return None
    x_first = node.inputs[0] is x
    ones, zeros = np.ones(channels), np.zeros(channels)
    if node.op == "Mul":
        return c, zeros
    if node.op == "Add":
        return ones, c
    if node.op == "Sub":
        return (ones, -c) if x_first else (-ones, c)
    if node.op == "Div" and x_first and np.all(c != 0):
        return 1.0 / c, zeros
    return None


def chain_to(graph: gs.Graph, start: gs.Tensor, end_op: str, channels: int, rank: int) -> list[gs.Node] | None:
    """The chain of per-channel ops from `start` to the first node of type `end_op`, each tensor along it read by
    nothing else; [.., end node] or None."""
    chain: list[gs.Node] = []
    tensor = start
    while True:
        node = only_consumer(graph, tensor)
        if node is None:
            return None
        if node.op == end_op and node.domain == schema.DOMAIN:
            return chain + [node]
        if node.op not in CHAIN_OPS or len(node.outputs) != 1 or variable_input(node) is not tensor:
            return None
        if node.op != "Relu" and affine(node, channels, rank) is None:
            return None
        chain.append(node)
        tensor = node.outputs[0]
