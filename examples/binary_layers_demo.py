"""A small binarized network written directly with the bnn2onnx ops, run in stock onnxruntime and checked
against the numpy reference (docs/ops.md). Until the Keras/PyTorch converters exist, this is the main demo.

    x float [N, 32, 16, 16]
    -> BinaryConv2D 3x3, 64 filters, zero padding, packing fused, packed output by thresholds
    -> BinaryMaxPool2D 2x2 stride 2 (on packed data)
    -> BinaryConv2D 3x3, 64 filters, +1 padding, float output (multiplier, bias, ReLU)
    -> Flatten -> BinaryDense 4096 -> 10 (float input, packing fused)
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import bnn2onnx
from bnn2onnx.ops import reference, schema
from bnn2onnx.ops.bitpacking import pack_conv_weights, pack_dense_weights


def build(rng: np.random.Generator) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    k1 = 3 * 3 * 32
    params = {
        "w1": pack_conv_weights(rng.choice([-1.0, 1.0], (64, 32, 3, 3))),
        "t1": rng.integers(-k1 // 4, k1 // 4, 64).astype(np.int32),
        "d1": rng.choice([-1, 1], 64).astype(np.int32),
        "w2": pack_conv_weights(rng.choice([-1.0, 1.0], (64, 64, 3, 3))),
        "m2": rng.uniform(0.01, 0.1, 64).astype(np.float32),
        "b2": rng.standard_normal(64).astype(np.float32),
        "w3": pack_dense_weights(rng.choice([-1.0, 1.0], (10, 64 * 8 * 8))),
        "m3": np.full(10, 0.05, np.float32),
        "b3": np.zeros(10, np.float32),
    }
    nodes = [
        schema.make_node(schema.BINARY_CONV2D, ["x", "w1", "t1", "d1"], ["c1"], channels_in=32, pads=[1, 1, 1, 1],
                         packed_output=1),
        schema.make_node(schema.BINARY_MAXPOOL2D, ["c1"], ["p1"], channels=64, kernel_shape=[2, 2],
                         strides=[2, 2]),
        schema.make_node(schema.BINARY_CONV2D, ["p1", "w2", "m2", "b2"], ["c2"], channels_in=64, pads=[1, 1, 1, 1],
                         pad_value=1, activation="RELU"),
        helper.make_node("Flatten", ["c2"], ["f2"]),
        schema.make_node(schema.BINARY_DENSE, ["f2", "w3", "m3", "b3"], ["logits"], channels_in=64 * 8 * 8),
    ]
    graph = helper.make_graph(
        nodes, "binary_layers_demo",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 32, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(v, k) for k, v in params.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), schema.opset_import()])
    onnx.checker.check_model(model)
    return model, params


def reference_logits(x: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    c1 = reference.binary_conv2d(x, p["w1"], p["t1"], p["d1"], channels_in=32, pads=(1, 1, 1, 1), packed_output=1)
    p1 = reference.binary_maxpool2d(c1, channels=64, kernel_shape=(2, 2), strides=(2, 2))
    c2 = reference.binary_conv2d(p1, p["w2"], p["m2"], p["b2"], channels_in=64, pads=(1, 1, 1, 1), pad_value=1,
                                 activation="RELU")
    return reference.binary_dense(c2.reshape(len(x), -1), p["w3"], p["m3"], p["b3"], channels_in=64 * 8 * 8)


def main() -> None:
    rng = np.random.default_rng(0)
    model, params = build(rng)
    x = rng.standard_normal((8, 32, 16, 16)).astype(np.float32)
    expected = reference_logits(x, params)
    for threads in (1, 2):
        session = bnn2onnx.inference_session(model, intra_op_num_threads=threads)
        logits = session.run(None, {"x": x})[0]
        max_diff = float(np.abs(logits - expected).max())
        same_argmax = float((logits.argmax(1) == expected.argmax(1)).mean())
        times = []
        for _ in range(20):
            start = time.perf_counter()
            session.run(None, {"x": x})
            times.append(time.perf_counter() - start)
        print(f"{threads} thread(s): max |onnxruntime - reference| = {max_diff:.2e}, argmax agreement "
              f"{same_argmax:.0%}, median latency (batch 8) {statistics.median(times) * 1e3:.2f} ms")
        if max_diff > 1e-5 * max(1.0, float(np.abs(expected).max())):
            raise SystemExit("onnxruntime disagrees with the reference")
    packed_bytes = sum(v.nbytes for v in params.values())
    float_bytes = (64 * 32 * 9 + 64 * 64 * 9 + 10 * 4096) * 4 + (64 * 2 + 64 * 2 + 10 * 2) * 4
    print(f"parameters: {packed_bytes / 1024:.1f} KiB bit-packed vs {float_bytes / 1024:.1f} KiB as float32 "
          f"({float_bytes / packed_bytes:.1f}x smaller)")


if __name__ == "__main__":
    main()
