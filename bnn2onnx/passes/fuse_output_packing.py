"""BitPack(y) of a BinaryConv2D's float output y -> the layer's output 1 (docs/ops.md): the layer writes the signs
of y, packed, in the same pass as y, so the next binary layer reads packed input while y goes on as a shortcut
(a residual network's every block), instead of re-reading y to pack it. The layer needs group 1; one BitPack per
layer (a second one of the same y stays, its readers keep working)."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from bnn2onnx.ops import schema
from bnn2onnx.passes.graph_tools import PassResult, detach, producer_op


def run(graph: gs.Graph) -> PassResult:
    result = PassResult("fuse_output_packing")
    for pack in [n for n in graph.nodes if n.op == schema.BIT_PACK and (n.domain or "") == schema.DOMAIN]:
        layer = producer_op(pack.inputs[0], schema.BINARY_CONV2D, schema.DOMAIN)
        if layer is None or layer.attrs.get("packed_output", 0) or len(layer.outputs) > 1:
            continue
        if layer.attrs.get("group", 1) != 1:
            result.refuse(pack, f"{layer.name} has group={layer.attrs['group']}: its output is packed separately")
            continue
        layer.outputs.append(pack.outputs[0])
        detach(pack)
        result.rewrites += 1
    return result
