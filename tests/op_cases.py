"""Random test cases for every bnn2onnx op.

A case holds: a one-node model with the custom op and its feeds; the numpy reference's output for it; and an
independent model of the same computation in standard ONNX ops on +-1 float tensors (Conv, MatMul, MaxPool,
Less, Where, Mul, Add, Relu), whose output `independent_as_reference` turns into the reference's format.
Shapes are drawn around the word size (1, 31, 32, 33, 63, 64, 65 channels), with odd channel counts, groups,
dilations, strides 1-2 with asymmetric pads, both padding modes, both output modes and batch > 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from bnn2onnx.ops import reference, schema
from bnn2onnx.ops.bitpacking import pack_conv_weights, pack_dense_weights, words_for

CHANNELS = (1, 3, 7, 31, 32, 33, 48, 63, 64, 65, 96, 100)
OPSET = 17


@dataclass
class Case:
    description: str
    model: onnx.ModelProto
    feeds: dict[str, np.ndarray]
    expected: np.ndarray
    independent_model: onnx.ModelProto
    independent_feeds: dict[str, np.ndarray]
    independent_as_reference: Callable[[np.ndarray], np.ndarray] = field(default=lambda y: y)
    features: set[str] = field(default_factory=set)  # what this case exercises (see REQUIRED_FEATURES)
    # BinaryConv2D's output 1 (the float output's signs, packed) when the model has it: its expected value.
    expected_signs: np.ndarray | None = None


def _model(nodes: list[onnx.NodeProto], inputs: dict[str, np.ndarray], initializers: dict[str, np.ndarray],
           output_type: int, signs_output: bool = False) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "case",
        [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
         for name, a in inputs.items()],
        [helper.make_tensor_value_info("y", output_type, None)] +
        [helper.make_tensor_value_info("y_bits", TensorProto.INT32, None)] * signs_output,
        [numpy_helper.from_array(a, name) for name, a in initializers.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), schema.opset_import()])


def _split(rng: np.random.Generator, named: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """Constant initializers most of the time; graph inputs sometimes, so both kernel paths run."""
    as_inputs = rng.random() < 0.25
    return (named, {}) if as_inputs else ({}, named)


def random_float(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Normal values with exact zeros and negative zeros mixed in (0 and -0.0 must mean +1)."""
    x = rng.standard_normal(shape).astype(np.float32)
    x[rng.random(shape) < 0.1] = 0.0
    x[rng.random(shape) < 0.05] = -0.0
    return x


def random_signs(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0).astype(np.float32)


def extreme_or_random(rng: np.random.Generator, x_shape: tuple[int, ...],
                      w_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Random input and weights; in one case of eight, all -1 input against all +1 weights instead: every xor
    bit set, the largest possible popcounts (the counters' overflow case) and accumulators of -K."""
    if rng.random() < 0.125:
        return np.full(x_shape, -1.5, np.float32), np.ones(w_shape, np.float32)
    return random_float(rng, x_shape), random_signs(rng, w_shape)


def _signs_nodes(x: str, out: str) -> list[onnx.NodeProto]:
    """Standard-op sign with 0 -> +1: Where(x < 0, -1, 1)."""
    return [helper.make_node("Less", [x, "zero"], [out + "_neg"]),
            helper.make_node("Where", [out + "_neg", "minus_one", "one"], [out])]


SIGN_CONSTANTS = {"zero": np.array(0, np.float32), "minus_one": np.array(-1, np.float32),
                  "one": np.array(1, np.float32)}


def _output_params(rng: np.random.Generator, out_c: int, field_size: int, packed: bool) -> tuple:
    if packed:
        threshold = rng.integers(-field_size - 1, field_size + 2, out_c).astype(np.int32)
        direction = rng.choice(np.array([-1, 0, 1], np.int32), out_c, p=[0.4, 0.1, 0.5]).astype(np.int32)
        return threshold, direction
    multiplier = (rng.standard_normal(out_c) * 0.1).astype(np.float32)
    bias = rng.standard_normal(out_c).astype(np.float32)
    return multiplier, bias


def _post_inputs(rng: np.random.Generator, out_shape: tuple[int, ...], packed: bool) -> dict[str, np.ndarray]:
    """Float output's optional inputs: post_multiplier with post_bias, and a residual, each in about a third of the
    cases."""
    post = {}
    if not packed and rng.random() < 0.35:
        post["post_multiplier"] = rng.standard_normal(out_shape[1]).astype(np.float32)
        post["post_bias"] = rng.standard_normal(out_shape[1]).astype(np.float32)
    if not packed and rng.random() < 0.35:
        post["residual"] = random_float(rng, out_shape)
    return post


def _post_input_names(post: dict[str, np.ndarray]) -> list[str]:
    """Inputs 4-6 of the node: post_multiplier and post_bias skipped by empty names when only a residual is given."""
    names = ["post_multiplier", "post_bias"] if "post_multiplier" in post else []
    return names + (([""] * (2 - len(names)) + ["residual"]) if "residual" in post else [])


def _post_features(post: dict[str, np.ndarray]) -> set[str]:
    return ({"post affine"} if "post_multiplier" in post else set()) | ({"residual"} if "residual" in post else set())


def _output_stage_nodes(acc: str, packed: bool, relu: bool, post: dict[str, np.ndarray],
                        final_relu: bool = False) -> list[onnx.NodeProto]:
    """Float: Mul, Add (, Relu) (, Mul, Add) (, Add residual) (, Relu). Packed: +1 iff direction*acc >= threshold,
    as float +-1."""
    if packed:
        return [helper.make_node("Mul", [acc, "second_f"], ["scaled"]),
                helper.make_node("Less", ["scaled", "first_f"], ["neg"]),
                helper.make_node("Where", ["neg", "minus_one", "one"], ["y"])]
    nodes = [helper.make_node("Mul", [acc, "first"], ["scaled"]),
             helper.make_node("Add", ["scaled", "second"], ["stage"])]
    if relu:
        nodes.append(helper.make_node("Relu", ["stage"], ["stage_relu"]))
    value = "stage_relu" if relu else "stage"
    if "post_multiplier" in post:
        nodes += [helper.make_node("Mul", [value, "post_multiplier_c"], ["post_scaled"]),
                  helper.make_node("Add", ["post_scaled", "post_bias_c"], ["post_shifted"])]
        value = "post_shifted"
    if "residual" in post:
        nodes.append(helper.make_node("Add", [value, "residual"], ["with_residual"]))
        value = "with_residual"
    if final_relu:
        nodes.append(helper.make_node("Relu", [value], ["final_relu"]))
        value = "final_relu"
    return nodes + [helper.make_node("Identity", [value], ["y"])]


def _output_stage_constants(first: np.ndarray, second: np.ndarray, packed: bool, per_channel: tuple,
                            post: dict[str, np.ndarray]) -> dict:
    if packed:
        return {"first_f": first.astype(np.float32).reshape(per_channel),
                "second_f": second.astype(np.float32).reshape(per_channel)}
    return {"first": first.reshape(per_channel), "second": second.reshape(per_channel),
            **{f"{name}_c": post[name].reshape(per_channel)
               for name in ("post_multiplier", "post_bias") if name in post}}


def _common_features(batch: int, channels_in: int, packed_in: bool, packed_out: bool,
                     runtime_params: bool) -> set[str]:
    return ({"batch > 1"} if batch > 1 else set()) | ({"odd channels"} if channels_in % 2 else set()) | {
        "packed input" if packed_in else "float input", "packed output" if packed_out else "float output",
        "weights as runtime inputs" if runtime_params else "constant weights"}


def bitpack_case(rng: np.random.Generator) -> Case:
    rank = int(rng.integers(2, 5))
    shape = (int(rng.integers(1, 4)), int(rng.choice(CHANNELS))) + tuple(int(d) for d in rng.integers(1, 7, rank - 2))
    x = random_float(rng, shape)
    channels = shape[1]
    model = _model([schema.make_node(schema.BIT_PACK, ["x"], ["y"])], {"x": x}, {}, TensorProto.INT32)
    independent = _model(_signs_nodes("x", "y"), {"x": x}, SIGN_CONSTANTS, TensorProto.FLOAT)
    return Case(f"BitPack {shape}", model, {"x": x}, reference.bit_pack(x), independent, {"x": x},
                lambda signs: _pack_by_arithmetic(np.moveaxis(signs, 1, -1) < 0, channels))


def _pack_by_arithmetic(negative: np.ndarray, channels: int) -> np.ndarray:
    """Packing written as sums of powers of two: an implementation independent of bitpacking.pack_bits."""
    words = np.zeros(negative.shape[:-1] + (words_for(channels),), dtype=np.int64)
    for c in range(channels):
        words[..., c // 32] += negative[..., c].astype(np.int64) << (c % 32)
    return words.astype(np.uint32).view(np.int32)


def bitunpack_case(rng: np.random.Generator) -> Case:
    rank = int(rng.integers(2, 5))
    channels = int(rng.choice(CHANNELS))
    spatial = tuple(int(d) for d in rng.integers(1, 7, rank - 2))
    shape = (int(rng.integers(1, 4)), channels) + spatial
    signs = random_signs(rng, shape)
    packed = _pack_by_arithmetic(np.moveaxis(signs, 1, -1) < 0, channels)
    model = _model([schema.make_node(schema.BIT_UNPACK, ["x"], ["y"], channels=channels)], {"x": packed}, {},
                   TensorProto.FLOAT)
    independent = _model([helper.make_node("Identity", ["s"], ["y"])], {"s": signs}, {}, TensorProto.FLOAT)
    return Case(f"BitUnpack {shape}", model, {"x": packed}, reference.bit_unpack(packed, channels=channels),
                independent, {"s": signs})


def conv_case(rng: np.random.Generator) -> Case:
    group = int(rng.choice([1, 1, 1, 2, 3, 4]))
    # 256 channels with a 7x7 kernel makes rows of 392 words: long enough for the AVX2 byte counters to widen.
    per_group = int(rng.choice(CHANNELS + (256,))) if group == 1 else int(rng.choice((1, 5, 16, 31, 32, 33, 40)))
    channels_in = group * per_group
    # Sometimes more filters per group than the kernels' blocks of 64 filters / 48 columns, and with one group more
    # than a task's chunk of 192 filters.
    draw = rng.random()
    per_group_out = rng.integers(1, 40 if group == 1 else 12) if draw < 0.8 else rng.integers(60, 140)
    out_c = group * int(rng.integers(190, 420) if group == 1 and draw > 0.95 else per_group_out)
    # Mostly square kernels (1x1 to 7x7), sometimes rectangular ones.
    if rng.random() < 0.3:
        kh, kw = (int(k) for k in rng.choice([1, 2, 3, 5, 7], 2))
    else:
        kh = kw = int(rng.choice([1, 3, 5, 7]))
    sh, sw = (int(s) for s in rng.integers(1, 3, 2))
    dh, dw = (int(d) for d in (rng.integers(1, 3, 2) if rng.random() < 0.3 else (1, 1)))
    pads = [int(p) for p in rng.integers(0, max(kh, kw), 4)]
    batch = int(rng.integers(1, 4))
    height = max(int(rng.integers(1, 10)), (kh - 1) * dh + 1 - pads[0] - pads[2])
    # Sometimes rows wider than a 16-pixel panel of the GEMM (most panels then lie within one row).
    width = max(int(rng.integers(1, 10) if rng.random() < 0.9 else rng.integers(17, 40)),
                (kw - 1) * dw + 1 - pads[1] - pads[3])
    pad_value = int(rng.integers(-1, 2))
    packed_out = bool(rng.random() < 0.5)
    relu = bool(not packed_out and rng.random() < 0.3)
    final_relu = bool(not packed_out and rng.random() < 0.25)
    packed_in = bool(rng.random() < 0.5)
    signs_output = bool(not packed_out and group == 1 and rng.random() < 0.3)

    x_float, w_float = extreme_or_random(rng, (batch, channels_in, height, width), (out_c, per_group, kh, kw))
    first, second = _output_params(rng, out_c, kh * kw * per_group, packed_out)
    x = reference.bit_pack(x_float) if packed_in else x_float
    attributes = {"channels_in": channels_in, "kernel_shape": [kh, kw] if rng.random() < 0.5 else None,
                  "strides": [sh, sw], "dilations": [dh, dw], "pads": pads, "group": group,
                  "pad_value": pad_value, "packed_output": int(packed_out),
                  "activation": "RELU" if relu else None, "final_activation": "RELU" if final_relu else None}
    given = {k: v for k, v in attributes.items() if v is not None}
    w_packed = pack_conv_weights(w_float)
    post = _post_inputs(rng, reference.binary_conv2d(x, w_packed, first, second, **given).shape, packed_out)
    residual = {"residual": post["residual"]} if "residual" in post else {}
    params = {"w": w_packed, "first": first, "second": second,
              **{k: v for k, v in post.items() if k != "residual"}}
    as_inputs, constants = _split(rng, params)
    model = _model([schema.make_node(schema.BINARY_CONV2D, ["x", "w", "first", "second"] + _post_input_names(post),
                                     ["y", "y_bits"] if signs_output else ["y"], **attributes)],
                   {"x": x, **as_inputs, **residual}, constants, TensorProto.INT32 if packed_out else TensorProto.FLOAT,
                   signs_output)
    expected = reference.binary_conv2d(x, w_packed, first, second, post.get("post_multiplier"),
                                       post.get("post_bias"), post.get("residual"), **given)

    # Independent: sign with Where, +1 and -1 padding with Pad, zero padding through Conv's own pads.
    conv_pads = [pads[0], pads[1], pads[2], pads[3]] if pad_value == 0 else [0, 0, 0, 0]
    nodes = _signs_nodes("xf", "s")
    conv_input = "s"
    if pad_value != 0:
        value = "one" if pad_value == 1 else "minus_one"
        nodes.append(helper.make_node("Pad", ["s", "pad_amounts", value], ["s_padded"], mode="constant"))
        conv_input = "s_padded"
    nodes.append(helper.make_node("Conv", [conv_input, "wf"], ["acc"], pads=conv_pads, strides=[sh, sw],
                                  dilations=[dh, dw], group=group, kernel_shape=[kh, kw]))
    nodes += _output_stage_nodes("acc", packed_out, relu, post, final_relu)
    constants = {**SIGN_CONSTANTS, "wf": w_float,
                 "pad_amounts": np.array([0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]], np.int64),
                 **_output_stage_constants(first, second, packed_out, (1, -1, 1, 1), post)}
    independent = _model(nodes, {"xf": x_float, **residual}, constants, TensorProto.FLOAT)
    features = _common_features(batch, channels_in, packed_in, packed_out, bool(as_inputs)) | {
        f"pad_value={pad_value}", f"kernel={kh}x{kw}"} | _post_features(post)
    features |= {"groups"} if group > 1 else set()
    features |= {"over 64 filters per group"} if out_c // group > 64 else set()
    features |= {"over 192 filters"} if out_c > 192 else set()
    features |= {"dilation"} if max(dh, dw) > 1 else set()
    features |= {"stride 2, asymmetric pads"} if 2 in (sh, sw) and pads[:2] != pads[2:] else set()
    features |= {"relu"} if relu else set()
    features |= {"final relu"} if final_relu else set()
    features |= {"stride 1, rows wider than a panel"} if (sh, sw) == (1, 1) and width > 16 else set()
    features |= {"signs output"} if signs_output else set()
    return Case(
        f"BinaryConv2D x{list(x.shape)}{'packed' if packed_in else 'float'} w{[out_c, per_group, kh, kw]} "
        f"{attributes} {sorted(post)}", model, {"x": x, **as_inputs, **residual}, expected, independent,
        {"xf": x_float, **residual},
        (lambda y: reference.bit_pack(y)) if packed_out else (lambda y: y), features,
        reference.bit_pack(expected) if signs_output else None)


def dense_case(rng: np.random.Generator) -> Case:
    channels_in = int(rng.choice(CHANNELS + (127, 128, 129, 300, 1000, 9000)))
    out_c = int(rng.choice((1, 10, 31, 32, 33, 64, 65, 100, 130)))
    # Past 16 rows the kernel splits the batch into groups of rows (kRowGroup in op_binary_dense.cc).
    batch = int(rng.choice((1, 2, 3, 5, 16, 17, 40)))
    packed_out = bool(rng.random() < 0.5)
    relu = bool(not packed_out and rng.random() < 0.3)
    final_relu = bool(not packed_out and rng.random() < 0.25)
    packed_in = bool(rng.random() < 0.5)
    x_float, w_float = extreme_or_random(rng, (batch, channels_in), (out_c, channels_in))
    first, second = _output_params(rng, out_c, channels_in, packed_out)
    x = reference.bit_pack(x_float) if packed_in else x_float
    attributes = {"channels_in": channels_in, "packed_output": int(packed_out),
                  "activation": "RELU" if relu else None, "final_activation": "RELU" if final_relu else None}
    given = {k: v for k, v in attributes.items() if v is not None}
    post = _post_inputs(rng, (batch, out_c), packed_out)
    residual = {"residual": post["residual"]} if "residual" in post else {}
    params = {"w": pack_dense_weights(w_float), "first": first, "second": second,
              **{k: v for k, v in post.items() if k != "residual"}}
    as_inputs, constants = _split(rng, params)
    model = _model([schema.make_node(schema.BINARY_DENSE, ["x", "w", "first", "second"] + _post_input_names(post),
                                     ["y"], **attributes)],
                   {"x": x, **as_inputs, **residual}, constants, TensorProto.INT32 if packed_out else TensorProto.FLOAT)
    expected = reference.binary_dense(x, params["w"], first, second, post.get("post_multiplier"),
                                      post.get("post_bias"), post.get("residual"), **given)
    nodes = _signs_nodes("xf", "s") + [helper.make_node("MatMul", ["s", "wt"], ["acc"])]
    nodes += _output_stage_nodes("acc", packed_out, relu, post, final_relu)
    constants = {**SIGN_CONSTANTS, "wt": np.ascontiguousarray(w_float.T),
                 **_output_stage_constants(first, second, packed_out, (1, -1), post)}
    independent = _model(nodes, {"xf": x_float, **residual}, constants, TensorProto.FLOAT)
    features = _common_features(batch, channels_in, packed_in, packed_out, bool(as_inputs)) | _post_features(post)
    features |= {"relu"} if relu else set()
    features |= {"final relu"} if final_relu else set()
    return Case(f"BinaryDense x{list(x.shape)} out={out_c} {attributes} {sorted(post)}", model,
                {"x": x, **as_inputs, **residual}, expected, independent, {"xf": x_float, **residual},
                (lambda y: reference.bit_pack(y)) if packed_out else (lambda y: y), features)


def maxpool_case(rng: np.random.Generator) -> Case:
    channels = int(rng.choice(CHANNELS))
    kh, kw = (int(k) for k in rng.integers(1, 5, 2))
    sh, sw = (int(s) for s in rng.integers(1, 3, 2))
    dh, dw = (int(d) for d in (rng.integers(1, 3, 2) if rng.random() < 0.3 else (1, 1)))
    pads = [int(rng.integers(0, kh)), int(rng.integers(0, kw)), int(rng.integers(0, kh)), int(rng.integers(0, kw))]
    batch = int(rng.integers(1, 4))
    height = max(int(rng.integers(1, 10)), (kh - 1) * dh + 1 - pads[0] - pads[2])
    width = max(int(rng.integers(1, 10)), (kw - 1) * dw + 1 - pads[1] - pads[3])
    x_float = random_float(rng, (batch, channels, height, width))
    packed = reference.bit_pack(x_float)
    attributes = {"channels": channels, "kernel_shape": [kh, kw], "strides": [sh, sw], "dilations": [dh, dw],
                  "pads": pads}
    model = _model([schema.make_node(schema.BINARY_MAXPOOL2D, ["x"], ["y"], **attributes)], {"x": packed}, {},
                   TensorProto.INT32)
    expected = reference.binary_maxpool2d(packed, **attributes)
    nodes = [helper.make_node("MaxPool", ["xf"], ["pooled"], kernel_shape=[kh, kw], strides=[sh, sw],
                              dilations=[dh, dw], pads=pads)] + _signs_nodes("pooled", "y")
    independent = _model(nodes, {"xf": x_float}, SIGN_CONSTANTS, TensorProto.FLOAT)
    features = {"batch > 1"} if batch > 1 else set()
    features |= {"odd channels"} if channels % 2 else set()
    features |= {"dilation"} if max(dh, dw) > 1 else set()
    features |= {"stride 2, asymmetric pads"} if 2 in (sh, sw) and pads[:2] != pads[2:] else set()
    return Case(f"BinaryMaxPool2D x{[batch, channels, height, width]} {attributes}", model, {"x": packed},
                expected, independent, {"xf": x_float}, lambda y: reference.bit_pack(y), features)


_BINARY_LAYER = {"batch > 1", "odd channels", "packed input", "float input", "packed output", "float output",
                 "weights as runtime inputs", "constant weights", "relu", "post affine", "residual", "final relu"}
# What the random cases of one test run must have covered between them.
REQUIRED_FEATURES: dict[str, set[str]] = {
    "BinaryConv2D": _BINARY_LAYER | {"pad_value=0", "pad_value=1", "pad_value=-1", "groups", "over 64 filters per group",
                                     "over 192 filters", "dilation", "stride 2, asymmetric pads", "kernel=1x1",
                                     "kernel=3x3", "kernel=7x7", "stride 1, rows wider than a panel",
                                     "signs output"},
    "BinaryDense": _BINARY_LAYER,
    "BinaryMaxPool2D": {"batch > 1", "odd channels", "dilation", "stride 2, asymmetric pads"},
    "BitPack": set(),
    "BitUnpack": set(),
}

CASE_GENERATORS: dict[str, Callable[[np.random.Generator], Case]] = {
    "BitPack": bitpack_case,
    "BitUnpack": bitunpack_case,
    "BinaryConv2D": conv_case,
    "BinaryDense": dense_case,
    "BinaryMaxPool2D": maxpool_case,
}
