"""MatMul(bin(x), W) with x of rank > 2 (a sequence or tokens: [batch, ..., channels]) ->
Reshape(MatMul(Flatten(bin(x), axis=-1), W), x's leading dims + [outputs]).

A dense layer applied to every row of a tensor is one over the rows stacked. Written that way, the Flatten sinks
above the binarizer (sink_layout_ops) and the MatMul becomes a BinaryDense; the Reshape gives back the leading
dimensions, read from the binarizer's float input at run time (any of them may be dynamic).
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from bnn2onnx.passes.graph_tools import (
    PassResult,
    binarizer_input,
    constant,
    detach,
    fresh_variable,
    is_binarized,
)


def _leading_dims_and(graph: gs.Graph, source: gs.Tensor, rank: int, last: int, name: str) -> gs.Tensor:
    """[dims 0 .. rank - 2 of source's shape] + [last], computed at run time."""
    shape = fresh_variable(graph, f"{name}_input_shape", np.int64, [rank])
    leading = fresh_variable(graph, f"{name}_leading_dims", np.int64, [rank - 1])
    target = fresh_variable(graph, f"{name}_output_shape", np.int64, [rank])
    graph.nodes.extend([
        gs.Node("Shape", f"{name}_shape", {}, [source], [shape]),
        gs.Node("Slice", f"{name}_leading", {}, [shape, gs.Constant(f"{name}_zero", np.array([0], np.int64)),
                                                 gs.Constant(f"{name}_rank_less_1", np.array([rank - 1], np.int64))],
                [leading]),
        gs.Node("Concat", f"{name}_target", {"axis": 0},
                [leading, gs.Constant(f"{name}_outputs", np.array([last], np.int64))], [target])])
    return target


# Slice takes its starts and ends as inputs from opset 10.
SLICE_INPUTS_OPSET = 10


def run(graph: gs.Graph) -> PassResult:
    result = PassResult("dense_over_rows")
    if graph.opset < SLICE_INPUTS_OPSET:
        return result
    for matmul in [n for n in graph.nodes if n.op == "MatMul" and n.domain in (None, "", "ai.onnx")]:
        x, out = matmul.inputs[0], matmul.outputs[0]
        unpack = is_binarized(x)
        weights = constant(matmul.inputs[1])
        if unpack is None or weights is None or weights.ndim != 2 or x.shape is None or len(x.shape) < 3:
            continue
        rank, name = len(x.shape), matmul.name or "dense"
        float_input = binarizer_input(unpack)  # the same shape as x
        rows = fresh_variable(graph, f"{name}_rows", x.dtype, [f"{name}_row_count", x.shape[-1]])
        row_outputs = fresh_variable(graph, f"{name}_row_outputs", out.dtype,
                                     [f"{name}_row_count", int(weights.shape[1])])
        target = _leading_dims_and(graph, float_input, rank, int(weights.shape[1]), name)
        w = matmul.inputs[1]
        detach(matmul)
        graph.nodes.extend([
            gs.Node("Flatten", f"{name}_flatten", {"axis": rank - 1}, [x], [rows]),
            gs.Node("MatMul", name, {}, [rows, w], [row_outputs]),
            gs.Node("Reshape", f"{name}_unflatten", {}, [row_outputs, target], [out])])
        result.rewrites += 1
    return result
