"""Equal constants -> one initializer: the multipliers, biases and thresholds the other passes create per layer
are often identical (same batch-norm statistics, same channel count); every reader then shares one copy."""

from __future__ import annotations

import hashlib

import numpy as np
import onnx_graphsurgeon as gs

from bnn2onnx.passes.graph_tools import PassResult


def run(graph: gs.Graph) -> PassResult:
    result = PassResult("dedupe_constants")
    first: dict[tuple, gs.Constant] = {}
    for node in graph.nodes:
        for i, tensor in enumerate(node.inputs):
            if not isinstance(tensor, gs.Constant):
                continue
            values = np.ascontiguousarray(tensor.values)
            key = (values.dtype.str, values.shape, hashlib.sha256(values.tobytes()).digest())
            kept = first.setdefault(key, tensor)
            if kept is not tensor and np.array_equal(np.asarray(kept.values), values):
                node.inputs[i] = kept
                result.rewrites += 1
    return result
