"""BitPack(chain(BinaryConv2D/BinaryDense float output)) -> the same op with packed output by thresholds, when
the chain (batch norm, per-channel Mul/Add/Sub/Div, Relu) and the layer's output have no other reader: the
seed's "batch norm simplified when there are no residuals".

The thresholds are not derived by algebra on the folded batch norm (whose rounding can differ from the source's
by an ulp and flip a sign): the chain itself is evaluated in float32 by onnxruntime for every integer the
accumulator can take, -K..K, exactly as the float model computes it, and each channel's decisions are read off
that table. A channel whose decisions are not monotonic in the accumulator keeps the float path.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs
import onnxruntime as ort

from bnn2onnx.ops import schema
from bnn2onnx.passes.graph_tools import PassResult, bnn_node, constant, detach
from bnn2onnx.passes.op_shapes import annotate
from bnn2onnx.passes.per_channel_ops import chain_to
from bnn2onnx.runtime import exact_session_options


def accumulator_bound(node: gs.Node) -> int:
    """The largest |acc| the layer can produce: the number of +-1 products summed per output."""
    channels_in = int(node.attrs["channels_in"])
    if node.op == schema.BINARY_DENSE:
        return channels_in
    _, kh, kw, _ = constant(node.inputs[1]).shape
    return int(kh * kw * channels_in // node.attrs.get("group", 1))


def _evaluate_chain(chain: list[gs.Node], values: np.ndarray, opset: int) -> np.ndarray:
    """Runs the chain's ops (standard ONNX, graph optimizations off) on `values`."""
    source = gs.Variable("values", np.float32, list(values.shape))
    tensor = source
    nodes = []
    for i, node in enumerate(chain):
        out = gs.Variable(f"chain_{i}", np.float32, None)
        inputs = [tensor if constant(t) is None else gs.Constant(f"c{i}_{j}", constant(t))
                  for j, t in enumerate(node.inputs)]
        nodes.append(gs.Node(node.op, f"n{i}", dict(node.attrs), inputs, [out]))
        tensor = out
    graph = gs.Graph(nodes=nodes, inputs=[source], outputs=[tensor], opset=opset)
    model = gs.export_onnx(graph)
    session = ort.InferenceSession(model.SerializeToString(), exact_session_options(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {"values": values})[0]


def thresholds_from_table(negative: np.ndarray, accumulators: np.ndarray) -> tuple[np.ndarray, np.ndarray] | int:
    """(threshold, direction) per channel reproducing the table negative[acc index, channel] under
    "+1 iff direction * acc >= threshold"; or the first channel whose decisions are not monotonic."""
    channels = negative.shape[1]
    threshold = np.zeros(channels, np.int32)
    direction = np.zeros(channels, np.int32)
    for o in range(channels):
        column = negative[:, o]
        switches = np.flatnonzero(column[1:] != column[:-1])
        if switches.size == 0:
            threshold[o] = 1 if column[0] else 0  # constant -1 (0 >= 1 never holds) or constant +1
        elif switches.size > 1:
            return o
        elif column[0]:  # -1 for small acc, +1 from acc[switch + 1] on
            direction[o], threshold[o] = 1, accumulators[switches[0] + 1]
        else:  # +1 up to acc[switch], -1 above
            direction[o], threshold[o] = -1, -accumulators[switches[0]]
    return threshold, direction


def _rewrite(graph: gs.Graph, layer: gs.Node, chain: list[gs.Node], result: PassResult) -> None:
    pack = chain[-1]
    bound = accumulator_bound(layer)
    accumulators = np.arange(-bound, bound + 1, dtype=np.int64)
    # The layer's own float output for each accumulator, computed as the op computes it (docs/ops.md).
    values = accumulators[:, None].astype(np.float32) * constant(layer.inputs[2]).astype(np.float32)
    values = (values + constant(layer.inputs[3]).astype(np.float32)).astype(np.float32)
    if layer.attrs.get("activation", "NONE") == "RELU":
        values = np.where(values < 0, np.float32(0), values)
    if layer.op == schema.BINARY_CONV2D:
        values = values.T[None, :, :, None]  # [1, O, 2K+1, 1]: per-channel constants broadcast as in NCHW
    evaluated = _evaluate_chain(chain[:-1], np.ascontiguousarray(values), graph.opset) if len(chain) > 1 else values
    negative = evaluated < 0  # BitPack: bit 1 iff < 0 (NaN packs as +1)
    table = negative[0, :, :, 0].T if layer.op == schema.BINARY_CONV2D else negative
    found = thresholds_from_table(table, accumulators)
    if isinstance(found, int):
        result.refuse(layer, f"channel {found}: the sign after the batch norm is not monotonic in the accumulator")
        return
    threshold, direction = found
    name = layer.name or layer.op
    attrs = {k: v for k, v in layer.attrs.items() if k != "activation"}
    attrs["packed_output"] = 1
    packed = bnn_node(layer.op, [layer.inputs[0], layer.inputs[1], gs.Constant(f"{name}_threshold", threshold),
                                 gs.Constant(f"{name}_direction", direction)], list(pack.outputs), name, **attrs)
    detach(pack)
    detach(layer)
    graph.nodes.append(annotate(packed))
    result.rewrites += 1


def run(graph: gs.Graph) -> PassResult:
    result = PassResult("fuse_threshold_output")
    for layer in [n for n in graph.nodes if n.op in (schema.BINARY_CONV2D, schema.BINARY_DENSE)]:
        if layer.attrs.get("packed_output", 0) or not layer.outputs:
            continue
        if constant(layer.inputs[1]) is None or constant(layer.inputs[2]) is None or constant(layer.inputs[3]) is None:
            continue
        channels = int(constant(layer.inputs[2]).shape[0])
        rank = 4 if layer.op == schema.BINARY_CONV2D else 2
        chain = chain_to(graph, layer.outputs[0], schema.BIT_PACK, channels, rank)
        if chain is not None:
            _rewrite(graph, layer, chain, result)
    return result
