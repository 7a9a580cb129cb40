"""Small onnx-graphsurgeon helpers every pass uses: constants, producers, consumers, and building our nodes.

Passes match on op types, attributes and values, never on tensor or node names (exporters rename and dedupe).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_graphsurgeon as gs

from bnn2onnx.ops import schema


@dataclass
class PassResult:
    """What one pass did: how many rewrites, for each candidate it left alone the node and why, and for each
    rewrite that computes a value differently from the source in some case, the tensor and how."""
    name: str
    rewrites: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)
    deviations: list[tuple[str, str]] = field(default_factory=list)

    def refuse(self, node: gs.Node, reason: str) -> None:
        self.refused.append((node.name or node.op, reason))


def constant(tensor: gs.Tensor) -> np.ndarray | None:
    """The value of a constant tensor (an initializer or a Constant node's output), else None."""
    if isinstance(tensor, gs.Constant):
        return np.asarray(tensor.values)
    node = producer(tensor)
    if node is not None and node.op == "Constant" and "value" in node.attrs:
        value = node.attrs["value"]
        return np.asarray(value.values if isinstance(value, gs.Constant) else value)
    return None


def producer(tensor: gs.Tensor) -> gs.Node | None:
    return tensor.inputs[0] if len(tensor.inputs) == 1 else None


def producer_op(tensor: gs.Tensor, op: str, domain: str | None = None) -> gs.Node | None:
    """The tensor's producer if it is an `op` node (of `domain` when given), else None."""
    node = producer(tensor)
    if node is None or node.op != op or (domain is not None and (node.domain or "") != domain):
        return None
    return node


def is_graph_output(graph: gs.Graph, tensor: gs.Tensor) -> bool:
    return any(out is tensor for out in graph.outputs)


def only_consumer(graph: gs.Graph, tensor: gs.Tensor) -> gs.Node | None:
    """The single node reading `tensor`, if nothing else (no other node, no graph output) reads it."""
    if len(tensor.outputs) != 1 or is_graph_output(graph, tensor):
        return None
    return tensor.outputs[0]


def uniform_value(tensor: gs.Tensor) -> float | None:
    """The one value every element of `tensor` has, when it is a constant filled with it, also as exporters write
    `ones_like(x)`: ConstantOfShape(Shape(x)), Expand(c, Shape(x)), and Neg of either."""
    value = constant(tensor)
    if value is not None:
        return float(value.flat[0]) if value.size and np.all(value == value.flat[0]) else None
    node = producer(tensor)
    if node is None:
        return None
    if node.op == "ConstantOfShape":
        fill = node.attrs.get("value")
        return float(np.asarray(fill.values).flat[0]) if fill is not None else 0.0
    if node.op == "Expand":
        return uniform_value(node.inputs[0])
    if node.op == "Neg":
        inner = uniform_value(node.inputs[0])
        return -inner if inner is not None else None
    return None


def scalar(value: np.ndarray | None) -> float | None:
    if value is None or value.size != 1:
        return None
    return float(value.reshape(()))


def bnn_node(op_type: str, inputs: list[gs.Tensor], outputs: list[gs.Tensor], name: str, **attrs) -> gs.Node:
    """A node of the bnn2onnx domain (attributes left as None take the op's default)."""
    if op_type not in schema.OP_TYPES:
        raise ValueError(f"unknown bnn2onnx op {op_type!r}")
    return gs.Node(op=op_type, name=name, domain=schema.DOMAIN, inputs=inputs, outputs=outputs,
                   attrs={k: v for k, v in attrs.items() if v is not None})


def fresh_variable(graph: gs.Graph, hint: str, dtype: type, shape: list | None = None) -> gs.Variable:
    """A new variable whose name does not clash with any tensor in the graph."""
    names = set(graph.tensors().keys())
    name, i = hint, 0
    while name in names:
        i += 1
        name = f"{hint}_{i}"
    return gs.Variable(name, dtype=dtype, shape=shape)


def replace_uses(graph: gs.Graph, old: gs.Tensor, new: gs.Tensor) -> None:
    """Every node reading `old` reads `new` instead. A graph output keeps its name: it becomes Identity(new)."""
    for node in list(old.outputs):
        for i, tensor in enumerate(node.inputs):
            if tensor is old:
                node.inputs[i] = new
    if is_graph_output(graph, old):
        for producer_node in list(old.inputs):
            producer_node.outputs.remove(old)
        graph.nodes.append(gs.Node("Identity", f"{old.name}_identity", inputs=[new], outputs=[old]))


def name_nodes_uniquely(graph: gs.Graph) -> None:
    """Gives every unnamed or duplicate-named node a unique name: ONNX requires it, reports need it, and the
    nodes passes create are named after the nodes they replace."""
    seen: set[str] = set()
    for index, node in enumerate(graph.nodes):
        name = node.name or f"{node.op}_{index}"
        while name in seen:
            name = f"{name}_{index}"
        node.name = name
        seen.add(name)


def detach(node: gs.Node) -> None:
    """Disconnects a node that a rewrite replaced (cleanup() then drops it)."""
    node.inputs.clear()
    node.outputs.clear()


def is_binarized(tensor: gs.Tensor) -> gs.Node | None:
    """The BitUnpack node producing `tensor` from a BitPack (a recognised binarizer), else None."""
    unpack = producer_op(tensor, schema.BIT_UNPACK, schema.DOMAIN)
    if unpack is None or producer_op(unpack.inputs[0], schema.BIT_PACK, schema.DOMAIN) is None:
        return None
    return unpack


def binarizer_input(unpack: gs.Node) -> gs.Tensor:
    """The float tensor x of a recognised binarizer BitUnpack(BitPack(x)), given its BitUnpack (is_binarized)."""
    return unpack.inputs[0].inputs[0].inputs[0]


def binarized_pad(tensor: gs.Tensor) -> tuple[gs.Node, np.ndarray] | None:
    """(the Pad, its pads) when `tensor` is a constant-mode Pad of a binarized tensor with constant pads over every
    axis (no axes input), else None."""
    pad = producer_op(tensor, "Pad")
    if pad is None or pad.attrs.get("mode", "constant") != "constant" or is_binarized(pad.inputs[0]) is None:
        return None
    pads = constant(pad.inputs[1])
    has_axes = len(pad.inputs) > 3 and pad.inputs[3].name != ""
    return None if pads is None or has_axes else (pad, pads)
