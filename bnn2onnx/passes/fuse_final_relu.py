"""BinaryConv2D/BinaryDense(float output) -> Relu: the ReLU becomes the layer's final_activation (docs/ops.md),
applied after its post affine map and residual, when the output has no other reader: e.g. the ReLU after the
shortcut's Add that ends each QuickNet stage, which would otherwise be a pass of its own over the tensor. (A ReLU
straight after the layer's affine output became its `activation` in fold_output_affine.)"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from bnn2onnx.ops import schema
from bnn2onnx.passes.graph_tools import PassResult, detach, only_consumer


def run(graph: gs.Graph) -> PassResult:
    result = PassResult("fuse_final_relu")
    for node in list(graph.nodes):
        if node.op not in (schema.BINARY_CONV2D, schema.BINARY_DENSE) or node.attrs.get("packed_output", 0) \
                or node.attrs.get("final_activation", "NONE") != "NONE":
            continue
        relu = only_consumer(graph, node.outputs[0])
        if relu is None or relu.op != "Relu":
            continue
        node.attrs["final_activation"] = "RELU"
        node.outputs[0] = relu.outputs[0]
        detach(relu)
        result.rewrites += 1
    return result
