"""BinaryConv2D/BinaryDense(BitPack(x)) -> the same op on float x, packing fused into the op's first read, when
the packed tensor has no other reader (saves writing and re-reading it)."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from bnn2onnx.ops import schema
from bnn2onnx.passes.graph_tools import PassResult, detach, only_consumer, producer_op


def run(graph: gs.Graph) -> PassResult:
    result = PassResult("fuse_input_packing")
    for node in [n for n in graph.nodes if n.op in (schema.BINARY_CONV2D, schema.BINARY_DENSE)]:
        pack = producer_op(node.inputs[0], schema.BIT_PACK, schema.DOMAIN)
        if pack is not None and only_consumer(graph, pack.outputs[0]) is node:
            node.inputs[0] = pack.inputs[0]
            detach(pack)
            result.rewrites += 1
    return result
