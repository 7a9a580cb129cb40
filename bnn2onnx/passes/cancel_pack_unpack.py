"""BitPack(BitUnpack(p)) -> p: packing the +-1 values of a packed tensor gives back the same words."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from bnn2onnx.ops import schema
from bnn2onnx.passes.graph_tools import PassResult, detach, producer_op, replace_uses


def run(graph: gs.Graph) -> PassResult:
    result = PassResult("cancel_pack_unpack")
    for pack in [n for n in graph.nodes if n.op == schema.BIT_PACK and n.domain == schema.DOMAIN]:
        unpack = producer_op(pack.inputs[0], schema.BIT_UNPACK, schema.DOMAIN)
        if unpack is not None:
            replace_uses(graph, pack.outputs[0], unpack.inputs[0])
            detach(pack)
            result.rewrites += 1
    return result
