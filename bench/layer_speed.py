"""Per-layer speed: BinaryConv2D and BinaryDense (packed input; float output and packed output) against
onnxruntime's float Conv or MatMul of the same shape, in one run; medians of repeated timings and their ratios (no
assertion: the machine is noisy, ratios are what to read). The three contenders of a shape run in interleaved
rounds (timing.py). Each writes into an output array bound once (io_binding), as a layer inside a network does:
what is timed is the layer, not Python's copy of its result (for a 64x56x56 float output, 0.01-0.02 ms, a tenth
of the binary layer). At 1 thread, the machine's floor for each layer is timed in the same rounds
(popcount_floor.py): the layer's fewest xor/popcount/add triples with no memory access, and the ratio to the float
op that a kernel reaching it would have. A shape timed while the core's loads ran more than QUIET_L1 times slower
than at their fastest in the run (a slow phase of a shared host, which slows the load-bound binary kernels more
than the float ones) is timed again, up to --retries times; the line says which attempt it shows.
    python bench/layer_speed.py [--threads N] [--rounds R] [--retries N]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from popcount_floor import layer_triples, load_probe
from timing import SPIN_PAUSE_S, HostLoad, L1Probe, interleaved_medians_ms, kernel_choice

import bnn2onnx
from bnn2onnx.ops import reference, schema
from bnn2onnx.ops.bitpacking import pack_conv_weights, pack_dense_weights

# (channels in, channels out, size, kernel, stride). The last two are 1x1 convs with a long reduction (no
# receptive-field gather, no padding): the xor/popcount GEMM nearly alone, i.e. the ceiling of the ratio on this
# CPU; 4608 -> 512 @ 7 has the same multiply-accumulates as the 3x3 512 -> 512 @ 7 layer.
SHAPES = [(64, 64, 56, 3, 1), (128, 128, 28, 3, 1), (256, 256, 14, 3, 1), (512, 512, 7, 3, 1),
          (128, 256, 28, 3, 2), (256, 256, 14, 1, 1), (4608, 512, 7, 1, 1), (2048, 256, 28, 1, 1)]
# (channels in, channels out, batch): a BinaryNet-style hidden layer, one sample and a batch.
DENSE_SHAPES = [(4096, 4096, 1), (4096, 4096, 16)]
# The L1 probe's slowdown up to which a shape's timing stands as taken in a quiet phase.
QUIET_L1 = 1.1


@dataclass
class Layer:
    name: str
    x: np.ndarray  # the float op's input
    packed_x: np.ndarray  # the binary ops' input: x packed
    float_model: onnx.ModelProto
    binary_models: tuple[onnx.ModelProto, onnx.ModelProto]  # float output, packed output
    triples: int  # the fewest 512-bit xor/popcount/add triples of the binary layer


def _model(node: onnx.NodeProto, x: np.ndarray, inits: dict[str, np.ndarray], out_type: int) -> onnx.ModelProto:
    graph = helper.make_graph([node], "layer", [helper.make_tensor_value_info(
        "x", helper.np_dtype_to_tensor_dtype(x.dtype), x.shape)], [helper.make_tensor_value_info("y", out_type, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), schema.opset_import()])


def aligned_copy(array: np.ndarray, alignment: int = 64) -> np.ndarray:
    """A copy of array starting on an `alignment`-byte boundary, as onnxruntime's allocator places a layer's input
    and output inside a network. numpy's arrays start on 16 bytes: a 64-byte vector load or store there straddles
    two cache lines, and each contender's time would depend on where its arrays happened to fall."""
    raw = np.empty(array.nbytes + alignment, np.uint8)
    start = -raw.ctypes.data % alignment
    copy = raw[start:start + array.nbytes].view(array.dtype).reshape(array.shape)
    copy[...] = array
    return copy


def bound_run(session: ort.InferenceSession, x: np.ndarray) -> Callable[[], object]:
    """One run of the session on x into an output array allocated once (shape and type from a first run)."""
    output = aligned_copy(session.run(None, {"x": x})[0])
    binding = session.io_binding()
    binding.bind_cpu_input("x", x)
    binding.bind_output("y", "cpu", 0, output.dtype, output.shape, output.ctypes.data)
    return lambda: (session.run_with_iobinding(binding), output)


def _binary_models(op_type: str, packed_x: np.ndarray, packed_w: np.ndarray, c_out: int,
                   **attributes: object) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """The binary op with float output (multiplier 1, bias 0) and with packed output (threshold 0, direction 1)."""
    float_params = {"a": np.ones(c_out, np.float32), "b": np.zeros(c_out, np.float32)}
    packed_params = {"a": np.zeros(c_out, np.int32), "b": np.ones(c_out, np.int32)}
    return tuple(
        _model(schema.make_node(op_type, ["x", "w", "a", "b"], ["y"], packed_output=packed_out, **attributes),
               packed_x, {"w": packed_w, **params}, TensorProto.INT32 if packed_out else TensorProto.FLOAT)
        for packed_out, params in enumerate((float_params, packed_params)))


def conv_layer(rng: np.random.Generator, c_in: int, c_out: int, size: int, k: int, stride: int) -> Layer:
    pad = k // 2
    x = aligned_copy(rng.standard_normal((1, c_in, size, size)).astype(np.float32))
    w = rng.choice([-1.0, 1.0], (c_out, c_in, k, k)).astype(np.float32)
    float_model = _model(helper.make_node("Conv", ["x", "w"], ["y"], pads=[pad] * 4, strides=[stride] * 2), x,
                         {"w": w}, TensorProto.FLOAT)
    packed_x = aligned_copy(reference.bit_pack(x))
    binary_models = _binary_models(schema.BINARY_CONV2D, packed_x, pack_conv_weights(w), c_out, channels_in=c_in,
                                   pads=[pad] * 4, strides=[stride] * 2)
    out_size = (size + 2 * pad - k) // stride + 1
    return Layer(f"{k}x{k}/s{stride} {c_in}->{c_out}@{size}", x, packed_x, float_model, binary_models,
                 layer_triples(out_size * out_size, c_out, k * k * c_in))


def dense_layer(rng: np.random.Generator, c_in: int, c_out: int, batch: int) -> Layer:
    x = aligned_copy(rng.standard_normal((batch, c_in)).astype(np.float32))
    w = rng.choice([-1.0, 1.0], (c_out, c_in)).astype(np.float32)
    float_model = _model(helper.make_node("MatMul", ["x", "w"], ["y"]), x, {"w": np.ascontiguousarray(w.T)},
                         TensorProto.FLOAT)
    packed_x = aligned_copy(reference.bit_pack(x))
    binary_models = _binary_models(schema.BINARY_DENSE, packed_x, pack_dense_weights(w), c_out, channels_in=c_in)
    return Layer(f"dense {c_in}->{c_out} x{batch}", x, packed_x, float_model, binary_models,
                 layer_triples(batch, c_out, c_in))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--retries", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    probe = load_probe()
    l1 = L1Probe(probe.l1_load_seconds) if probe else None
    floor = probe is not None and args.threads == 1
    print(kernel_choice())
    if probe:
        print(probe.describe())
    print(f"{'layer':28s} {'float op':>11s} {'binary->float':>14s} {'ratio':>6s} {'binary->packed':>15s} "
          f"{'ratio':>6s}" + (f" {'floor':>9s} {'ratio':>6s}" if floor else "")
          + f"   ({args.threads} thread(s), medians of {args.rounds}x5 runs)")
    layers = [conv_layer(rng, *shape) for shape in SHAPES] + [dense_layer(rng, *shape) for shape in DENSE_SHAPES]
    for layer in layers:
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        float_session = ort.InferenceSession(layer.float_model.SerializeToString(), options,
                                             providers=["CPUExecutionProvider"])
        runs: dict[str, Callable[[], object]] = {"float": bound_run(float_session, layer.x)}
        for packed_out, model in enumerate(layer.binary_models):
            session = bnn2onnx.inference_session(model, intra_op_num_threads=args.threads)
            runs[f"binary{packed_out}"] = bound_run(session, layer.packed_x)
        if floor:
            runs["floor"] = partial(probe.triples, layer.triples, 1)
        for attempt in range(1, args.retries + 2):
            load = HostLoad(l1)
            medians = interleaved_medians_ms(runs, args.rounds, pause_s=SPIN_PAUSE_S if args.threads > 1 else 0.0,
                                             host=load)
            slowdown = load.l1_slowdown()
            if slowdown is None or slowdown <= QUIET_L1:
                break
        float_ms, binary_float, binary_packed = medians["float"], medians["binary0"], medians["binary1"]
        print(f"{layer.name:28s} {float_ms:9.3f}ms {binary_float:12.3f}ms {float_ms / binary_float:5.1f}x "
              f"{binary_packed:13.3f}ms {float_ms / binary_packed:5.1f}x"
              + (f" {medians['floor']:7.3f}ms {float_ms / medians['floor']:5.1f}x" if floor else "") + f"  {load}"
              + (f", attempt {attempt}" if attempt > 1 else ""),
              flush=True)


if __name__ == "__main__":
    main()
