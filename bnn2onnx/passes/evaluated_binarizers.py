"""Binarizers recognised by what they compute, whatever ops spell them (recognise_binarizers.py uses this).

For a tensor y that a conv or dense layer reads, candidate inputs x are the tensors y is an elementwise function
of: every path from y back to anything that is not a constant passes through x, through elementwise ops only
(other tensors may be read for their shape alone, as ones_like does). The nearest candidate whose function,
evaluated in onnxruntime, maps every probe value as sign does (x < 0 -> -1, else +1: 0 and -0.0 -> +1) is y's
input. The probes are 0, -0.0, the smallest subnormal and normal floats, 1e-7, 0.5, 1, 3, 1e30 and the largest
float, each with both signs and each filling one whole sample (so a per-channel constant meets every probe), plus
one sample of random values. Spellings this finds include tf.where(x >= 0, ones_like(x), -ones_like(x)) as
tf2onnx lowers it, torch.where(sign(x) == 0, 1, sign(x)) and Cast(x >= 0) * 2 - 1; one that maps 0 (or any
probe) elsewhere is not taken.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import onnxruntime as ort

from bnn2onnx.passes.graph_tools import constant, producer

# Ops through which y may depend on x's values: each output element from the same element of its inputs.
ELEMENTWISE = frozenset({"Abs", "Add", "And", "Cast", "Ceil", "Clip", "Div", "Equal", "Floor", "Greater",
                         "GreaterOrEqual", "Identity", "Less", "LessOrEqual", "Max", "Min", "Mul", "Neg", "Not",
                         "Or", "Relu", "Round", "Sign", "Sub", "Where", "Xor"})
# Ops that may compute a shape (ones_like's, an Expand's) from other tensors' shapes.
SHAPE_OPS = frozenset({"Cast", "Concat", "Gather", "Identity", "Slice", "Squeeze", "Unsqueeze"})
# Layout ops between a binarizer and the layer that reads it.
LAYOUT_OPS = frozenset({"Flatten", "Identity", "Pad", "Reshape", "Squeeze", "Transpose", "Unsqueeze"})
LAYER_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
MAX_NODES = 48  # a binarizer is a handful of ops; a larger region is not one
MAX_CANDIDATES = 12

_TINY = np.finfo(np.float32)
PROBES = np.array([0.0, -0.0, *(s * v for v in (_TINY.smallest_subnormal, _TINY.tiny, 1e-7, 0.5, 1.0, 3.0, 1e30,
                                                  _TINY.max) for s in (1.0, -1.0))], np.float32)


@dataclass
class Region:
    """The nodes that compute y from x, and the tensors read only for their shape."""
    nodes: list[gs.Node] = field(default_factory=list)
    shape_leaves: list[gs.Tensor] = field(default_factory=list)


def feeds_a_layer(tensor: gs.Tensor) -> bool:
    """Whether a conv or dense layer reads `tensor`, directly or through layout ops."""
    pending, seen = [tensor], set()
    while pending:
        t = pending.pop()
        for consumer in t.outputs:
            if consumer.op in LAYER_OPS:
                return True
            if consumer.op in LAYOUT_OPS and consumer.inputs and consumer.inputs[0] is t and id(consumer) not in seen:
                seen.add(id(consumer))
                pending.extend(consumer.outputs)
    return False


def _candidates(y: gs.Tensor) -> list[gs.Tensor]:
    """Float tensors on y's elementwise value paths, nearest first (comparisons' bool outputs are passed through,
    values made from a shape alone are not candidates)."""
    found, frontier, seen = [], [y], {y.name}
    while frontier and len(found) < MAX_CANDIDATES and len(seen) < MAX_NODES:
        next_frontier = []
        for t in frontier:
            node = producer(t)
            if node is None or node.op not in ELEMENTWISE | {"Expand"}:
                continue
            for v in node.inputs[:1] if node.op == "Expand" else node.inputs:
                if not v.name or v.name in seen or constant(v) is not None:
                    continue
                seen.add(v.name)
                next_frontier.append(v)
                source = producer(v)
                if v.dtype == np.float32 and (source is None or source.op != "ConstantOfShape"):
                    found.append(v)
        frontier = next_frontier
    return found[:MAX_CANDIDATES]


def _region(y: gs.Tensor, x: gs.Tensor) -> Region | None:
    """The region computing y from x, or None when y depends on another tensor's values."""
    region, done = Region(), set()

    def constant_value(t: gs.Tensor) -> bool:
        """Whether t is a constant (an initializer, or a Constant node's output: that node joins the region)."""
        if constant(t) is None:
            return False
        node = producer(t)
        return node is None or visit(node, [])

    def shape_path(t: gs.Tensor) -> bool:
        if constant_value(t):
            return True
        node = producer(t)
        if node is None:
            return False
        if node.op in ("Shape", "Size"):
            if id(node) not in done:
                done.add(id(node))
                region.nodes.append(node)
                region.shape_leaves.append(node.inputs[0])
            return True
        return node.op in SHAPE_OPS and visit(node, [shape_path] * len(node.inputs))

    def value_path(t: gs.Tensor) -> bool:
        if t is x or not t.name or constant_value(t):
            return True
        node = producer(t)
        if node is None:
            return False
        if node.op == "Expand":
            return visit(node, [value_path, shape_path])
        if node.op == "ConstantOfShape":
            return visit(node, [shape_path])
        return node.op in ELEMENTWISE and visit(node, [value_path] * len(node.inputs))

    def visit(node: gs.Node, paths: list) -> bool:
        if id(node) in done:
            return True
        done.add(id(node))
        if len(done) > MAX_NODES or not all(path(t) for path, t in zip(paths, node.inputs)):
            return False
        region.nodes.append(node)
        return True

    if not value_path(y) or not region.nodes:
        return None
    # A shape read from x or from a tensor the region computes is not an input of the evaluation.
    computed = {t.name for node in region.nodes for t in node.outputs} | {x.name}
    region.shape_leaves = [leaf for leaf in region.shape_leaves if leaf.name not in computed]
    return region


def _batched(tensor: gs.Tensor, batch: int) -> list[int] | None:
    shape = tensor.shape
    if shape is None or len(shape) < 1 or not all(isinstance(d, int) for d in shape[1:]):
        return None
    return [batch, *shape[1:]]


def computes_sign(graph: gs.Graph, y: gs.Tensor, x: gs.Tensor, region: Region) -> bool:
    """Evaluates y as a function of x on the probes (PROBES, docstring)."""
    batch = len(PROBES) + 1
    x_shape = _batched(x, batch)
    leaf_shapes = [_batched(leaf, batch) for leaf in region.shape_leaves]
    if x_shape is None or any(s is None for s in leaf_shapes) or x.dtype != np.float32:
        return False
    probe = np.empty(x_shape, np.float32)
    probe[:-1] = PROBES.reshape([-1] + [1] * (len(x_shape) - 1))
    probe[-1] = np.random.default_rng(0).standard_normal(x_shape[1:])
    feeds = {x.name: probe} | {leaf.name: np.zeros(s, leaf.dtype or np.float32)
                               for leaf, s in zip(region.shape_leaves, leaf_shapes)}
    inputs = [x, *region.shape_leaves]
    evaluation = gs.Graph(nodes=region.nodes, inputs=inputs, outputs=[y], opset=graph.opset,
                          import_domains=graph.import_domains)
    try:
        model = gs.export_onnx(evaluation, do_type_check=False)
        # Types as fed and computed; shapes left open (the graph's own have a symbolic batch).
        for value in [*model.graph.input, *model.graph.output]:
            value.type.tensor_type.ClearField("shape")
            dtype = feeds[value.name].dtype if value.name in feeds else np.dtype(np.float32)
            value.type.tensor_type.elem_type = onnx.helper.np_dtype_to_tensor_dtype(dtype)
        options = ort.SessionOptions()
        options.log_severity_level = 4
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        result = session.run(None, feeds)[0]
    except Exception:  # noqa: BLE001 (a region onnxruntime cannot run on its own is simply not a binarizer)
        return False
    expected = np.where(probe < 0, np.float32(-1), np.float32(1))
    return result.shape == expected.shape and bool(np.array_equal(result, expected))


def evaluated_sign_input(graph: gs.Graph, y: gs.Tensor) -> gs.Tensor | None:
    """The tensor y is the binary sign of (0 -> +1), found by evaluation; None if there is none."""
    if y.dtype is not None and np.dtype(y.dtype) != np.float32:
        return None
    for x in _candidates(y):
        region = _region(y, x)
        if region is not None and computes_sign(graph, y, x, region):
            return x
    return None
