"""Subgraphs of constants -> their values, computed by onnxruntime (onnx-graphsurgeon's folding).

PyTorch's legacy exporter never folds weight binarizers: a binary layer's weight arrives as Sign(W), XNOR-Net's
Sign(W) * ReduceMean(Abs(W)), Bi-Real Net's scale chains, Where(W >= 0, 1, -1), Reshape and Transpose of them.
Folded, the layer sees one constant weight that the conv and dense passes can test for +-s per channel. The
values are the ones onnxruntime computes when it runs the float model, so folding changes nothing. Expand is
not folded: it only broadcasts, and folding it would store the broadcast copy.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs
from onnx_graphsurgeon.logger import G_LOGGER

from bnn2onnx.passes.graph_tools import PassResult


def run(graph: gs.Graph) -> PassResult:
    result = PassResult("fold_constants")
    before = len(graph.nodes)
    graph.toposort()
    with G_LOGGER.suppress(G_LOGGER.ERROR):  # its advice on large folded tensors: binary weights are meant to be
        graph.fold_constants(fold_shapes=True, should_exclude_node=lambda node: node.op == "Expand")
    graph.cleanup()
    result.rewrites = before - len(graph.nodes)
    return result
