"""BitPack(MaxPool(x)) -> BinaryMaxPool2D(BitPack(x)) when the MaxPool's only reader is the BitPack.

Exact because sign (0 -> +1) is monotonic: the sign of a window's maximum is the maximum of its signs; ONNX
MaxPool ignores padded positions and BinaryMaxPool2D does too. Moving the pooling after the packing lets the
layer before it produce packed output directly (fuse_threshold_output).
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from bnn2onnx.ops import schema
from bnn2onnx.passes.graph_tools import PassResult, bnn_node, detach, fresh_variable, only_consumer, producer_op
from bnn2onnx.passes.op_shapes import annotate


def run(graph: gs.Graph) -> PassResult:
    result = PassResult("fuse_binary_maxpool")
    for pack in [n for n in graph.nodes if n.op == schema.BIT_PACK and n.domain == schema.DOMAIN]:
        pool = producer_op(pack.inputs[0], "MaxPool")
        if pool is None or only_consumer(graph, pool.outputs[0]) is not pack or len(pool.outputs) != 1:
            continue
        x = pool.inputs[0]
        kernel = list(pool.attrs.get("kernel_shape", []))
        if len(kernel) != 2 or pool.attrs.get("ceil_mode", 0) or pool.attrs.get("storage_order", 0) or \
                pool.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID") or x.shape is None or \
                not isinstance(x.shape[1], int):
            result.refuse(pool, "MaxPool is not 2-D with explicit pads, floor rounding and known channels")
            continue
        name = pool.name or "maxpool"
        packed_input = fresh_variable(graph, f"{name}_packed_input", None)
        graph.nodes.append(annotate(bnn_node(schema.BIT_PACK, [x], [packed_input], f"{name}_pack")))
        out = pack.outputs[0]
        detach(pack)
        graph.nodes.append(annotate(bnn_node(
            schema.BINARY_MAXPOOL2D, [packed_input], [out], name, channels=int(x.shape[1]), kernel_shape=kernel,
            strides=list(pool.attrs.get("strides", [1, 1])), dilations=list(pool.attrs.get("dilations", [1, 1])),
            pads=list(pool.attrs.get("pads", [0, 0, 0, 0])))))
        result.rewrites += 1
    return result
