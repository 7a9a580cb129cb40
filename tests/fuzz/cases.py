"""Fuzz cases for the bnn2onnx ops: a case is a JSON-serialisable spec (one node, its attributes, each input's
dtype, shape and fill, whether it is a constant initializer, the kernel ISA cap and the thread count), from which
the model, the feeds and the numpy reference's answer are built deterministically.

`generate(seed, index)` draws a valid case with small random sizes and then, half of the time, breaks it in one
or two ways: a dimension made zero or huge (huge only where the tensor stays empty, so it can be fed), an
attribute made negative, zero, huge, of the wrong length or type, or left out, an element type or rank changed,
padding bits set. Whether the result is still valid is for the op and the reference to say, not the generator.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from bnn2onnx.ops import reference, schema
from bnn2onnx.ops.bitpacking import WORD_BITS, words_for

Spec = dict[str, Any]

HUGE = (2**24, 2**24 + 1, 2**31, 2**40, 2**45)
BAD_INTS = (-1, 0, 2**24 - 1, 2**24, 2**31, 2**40, -(2**40))
DTYPES = {"float32": np.float32, "int32": np.int32, "float16": np.float16, "int64": np.int64, "uint8": np.uint8}
# The reference pads and loops in numpy: a case whose padded input or output exceeds this many elements runs
# unchecked (its outcome is still classified: error, crash, hang, sanitizer report).
REFERENCE_LIMIT = 4_000_000
OPSET = 17
# A mutated shape may be huge and not empty: its input is not built (the case counts as unbuildable).
BUILD_LIMIT = 2**24


def _input(name: str, dtype: str, shape: list[int], fill: str, constant: bool = False, **fill_args: Any) -> Spec:
    return {"name": name, "dtype": dtype, "shape": shape, "fill": fill, "constant": constant, **fill_args}


def _binary_layer_tail(rng: np.random.Generator, out_c: int, out_shape: list[int], packed_out: bool,
                       field: int, constant: bool) -> list[Spec]:
    """Inputs 2-6 of BinaryConv2D / BinaryDense: the output parameters, then optional post affine and residual."""
    if packed_out:
        inputs = [_input("first", "int32", [out_c], "ints", constant, low=-field - 1, high=field + 2),
                  _input("second", "int32", [out_c], "ints", constant, low=-1, high=2)]
    else:
        inputs = [_input("first", "float32", [out_c], "float", constant),
                  _input("second", "float32", [out_c], "float", constant)]
    if not packed_out and rng.random() < 0.3:
        inputs += [_input("post_multiplier", "float32", [out_c], "float", True),
                   _input("post_bias", "float32", [out_c], "float", True)]
    if not packed_out and rng.random() < 0.3:
        inputs += [_input("", "", [], "none")] * (6 - len(inputs))
        inputs.append(_input("residual", "float32", out_shape, "float"))
    return inputs


def _window_out(size: int, pad: int, kernel: int, dilation: int, stride: int) -> int:
    return (size + pad - ((kernel - 1) * dilation + 1)) // stride + 1


def _conv(rng: np.random.Generator) -> Spec:
    group = int(rng.choice([1, 1, 1, 2, 3, 4]))
    per_group = int(rng.choice([1, 3, 8, 31, 32, 33, 64])) if group > 1 else int(rng.integers(1, 70))
    channels_in = group * per_group
    out_c = group * int(rng.integers(1, 40 // group + 2))
    kh, kw = (int(v) for v in rng.integers(1, 5, 2))
    strides = [int(v) for v in rng.integers(1, 4, 2)]
    dilations = [int(v) for v in rng.integers(1, 3, 2)]
    pads = [int(v) for v in rng.integers(0, 4, 4)]
    batch = int(rng.integers(0, 3)) if rng.random() < 0.2 else 1
    height, width = (int(v) for v in rng.integers(0 if rng.random() < 0.15 else 1, 10, 2))
    # The padded input must hold one dilated kernel: grow the pads where it would not.
    for axis, (size, kernel) in enumerate(((height, kh), (width, kw))):
        short = (kernel - 1) * dilations[axis] + 1 - (size + pads[axis] + pads[axis + 2])
        pads[axis + 2] += max(0, short)
    packed_in, packed_out = rng.random() < 0.4, rng.random() < 0.4
    out_h = _window_out(height, pads[0] + pads[2], kh, dilations[0], strides[0])
    out_w = _window_out(width, pads[1] + pads[3], kw, dilations[1], strides[1])
    x = (_input("x", "int32", [batch, height, width, words_for(channels_in)], "bits", channels=channels_in)
         if packed_in else _input("x", "float32", [batch, channels_in, height, width], "float"))
    constant = rng.random() < 0.75
    inputs = [x, _input("w", "int32", [out_c, kh, kw, words_for(per_group)], "bits", constant, channels=per_group)]
    inputs += _binary_layer_tail(rng, out_c, [batch, out_c, out_h, out_w], packed_out, kh * kw * per_group,
                                 constant)
    attributes = {"channels_in": channels_in, "group": group, "strides": strides, "dilations": dilations,
                  "pads": pads, "pad_value": int(rng.integers(-1, 2)), "packed_output": int(packed_out)}
    if not packed_out and rng.random() < 0.3:
        attributes["activation"] = "RELU"
    signs = not packed_out and group == 1 and rng.random() < 0.2
    return {"op": schema.BINARY_CONV2D, "attributes": attributes, "inputs": inputs, "outputs": 2 if signs else 1}


def _dense(rng: np.random.Generator) -> Spec:
    channels_in, out_c = int(rng.integers(1, 140)), int(rng.integers(1, 80))
    batch = int(rng.integers(0, 20))
    packed_in, packed_out = rng.random() < 0.4, rng.random() < 0.4
    x = (_input("x", "int32", [batch, words_for(channels_in)], "bits", channels=channels_in) if packed_in
         else _input("x", "float32", [batch, channels_in], "float"))
    constant = rng.random() < 0.75
    inputs = [x, _input("w", "int32", [out_c, words_for(channels_in)], "bits", constant, channels=channels_in)]
    inputs += _binary_layer_tail(rng, out_c, [batch, out_c], packed_out, channels_in, constant)
    return {"op": schema.BINARY_DENSE, "attributes": {"channels_in": channels_in, "packed_output": int(packed_out)},
            "inputs": inputs, "outputs": 1}


def _maxpool(rng: np.random.Generator) -> Spec:
    channels = int(rng.integers(1, 100))
    kernel = [int(v) for v in rng.integers(1, 4, 2)]
    pads = [int(rng.integers(0, kernel[i % 2])) for i in range(4)]
    dilations = [int(v) for v in rng.integers(1, 3, 2)]
    sizes = [max(int(rng.integers(0, 9)), (kernel[a] - 1) * dilations[a] + 1 - pads[a] - pads[a + 2])
             for a in range(2)]
    return {"op": schema.BINARY_MAXPOOL2D,
            "attributes": {"channels": channels, "kernel_shape": kernel, "pads": pads, "dilations": dilations,
                           "strides": [int(v) for v in rng.integers(1, 4, 2)]},
            "inputs": [_input("x", "int32", [int(rng.integers(0, 3)), *sizes, words_for(channels)], "bits",
                              channels=channels)], "outputs": 1}


def _bitpack(rng: np.random.Generator) -> Spec:
    shape = [int(rng.integers(0, 3)), int(rng.integers(0, 100))] + [int(v) for v in
                                                                    rng.integers(0, 6, int(rng.integers(0, 3)))]
    return {"op": schema.BIT_PACK, "attributes": {}, "inputs": [_input("x", "float32", shape, "float")],
            "outputs": 1}


def _bitunpack(rng: np.random.Generator) -> Spec:
    channels = int(rng.integers(0, 100))
    shape = [int(rng.integers(0, 3))] + [int(v) for v in rng.integers(0, 6, int(rng.integers(0, 3)))]
    return {"op": schema.BIT_UNPACK, "attributes": {"channels": channels},
            "inputs": [_input("x", "int32", [*shape, words_for(channels)], "bits", channels=channels)], "outputs": 1}


VALID = {schema.BINARY_CONV2D: _conv, schema.BINARY_DENSE: _dense, schema.BINARY_MAXPOOL2D: _maxpool,
         schema.BIT_PACK: _bitpack, schema.BIT_UNPACK: _bitunpack}
ATTRIBUTE_NAMES = {schema.BINARY_CONV2D: ("channels_in", "group", "strides", "dilations", "pads", "pad_value",
                                          "packed_output", "kernel_shape", "activation", "final_activation"),
                   schema.BINARY_DENSE: ("channels_in", "packed_output", "activation", "final_activation"),
                   schema.BINARY_MAXPOOL2D: ("channels", "kernel_shape", "strides", "dilations", "pads",
                                             "ceil_mode"),
                   schema.BIT_PACK: (), schema.BIT_UNPACK: ("channels",)}


def _break_attribute(rng: np.random.Generator, spec: Spec) -> None:
    names = ATTRIBUTE_NAMES[spec["op"]]
    if not names:
        return
    name = str(rng.choice(names))
    current = spec["attributes"].get(name)
    choice = rng.integers(0, 5)
    if choice == 0:
        spec["attributes"].pop(name, None)
    elif choice == 1:
        spec["attributes"][name] = float(rng.standard_normal()) if rng.random() < 0.5 else "TANH"
    elif isinstance(current, list):
        values = list(current)
        if choice == 2:
            values = values[:-1] if rng.random() < 0.5 else values + [1]
        else:
            values[int(rng.integers(0, len(values)))] = int(rng.choice(BAD_INTS))
        spec["attributes"][name] = values
    else:
        spec["attributes"][name] = int(rng.choice(BAD_INTS + (1, 2, 3)))


def _break_input(rng: np.random.Generator, spec: Spec) -> None:
    real = [i for i in spec["inputs"] if i["fill"] != "none"]
    target = real[int(rng.integers(0, len(real)))]
    shape = target["shape"]
    choice = rng.integers(0, 6)
    if choice <= 1 and shape:  # a zero dimension, and maybe a huge one beside it (the tensor stays empty)
        zero = int(rng.integers(0, len(shape)))
        shape[zero] = 0
        if choice == 1 and len(shape) > 1:
            shape[(zero + int(rng.integers(1, len(shape)))) % len(shape)] = int(rng.choice(HUGE))
    elif choice == 2 and shape:
        shape[int(rng.integers(0, len(shape)))] += int(rng.choice([-1, 1, 31, 32]))
        shape[:] = [max(0, d) for d in shape]
    elif choice == 3:
        target["dtype"] = str(rng.choice(list(DTYPES)))
    elif choice == 4:
        target["shape"] = shape[:-1] if shape and rng.random() < 0.5 else shape + [1]
    elif target["fill"] == "bits":
        target["channels"] = None  # random padding bits past the channels


def generate(seed: int, index: int) -> Spec:
    rng = np.random.default_rng([seed, index])
    op = str(rng.choice(sorted(VALID)))
    spec = VALID[op](rng)
    for _ in range(int(rng.choice([0, 0, 1, 2]))):
        (_break_attribute if rng.random() < 0.45 else _break_input)(rng, spec)
    spec["isa"] = str(rng.choice(["native", "avx512bw", "avx2", "portable"]))
    spec["implicit_gemm"] = bool(rng.random() < 0.3)  # BinaryConv2D's AVX-512 GEMM form on any tier
    spec["threads"] = int(rng.choice([1, 2]))
    spec["data_seed"] = int(rng.integers(0, 2**31))
    return spec


def _fill(rng: np.random.Generator, spec: Spec) -> np.ndarray:
    dtype = DTYPES[spec["dtype"]]
    shape = tuple(spec["shape"])
    if 0 in shape:
        return np.zeros(shape, dtype)
    if spec["fill"] == "float":
        values = rng.standard_normal(shape)
        values[rng.random(shape) < 0.1] = 0.0
        return values.astype(dtype)
    if spec["fill"] == "ints":
        return rng.integers(spec["low"], spec["high"], shape).astype(dtype)
    words = rng.integers(-(2**31), 2**31, shape, dtype=np.int64).astype(np.int32)
    channels = spec.get("channels")
    if channels is not None and shape and shape[-1] == words_for(channels) and channels % WORD_BITS:
        words[..., -1] &= np.int32((1 << (channels % WORD_BITS)) - 1)
    return words.astype(dtype)


def _output_types(spec: Spec) -> list[int]:
    packed = {schema.BIT_PACK: True, schema.BIT_UNPACK: False, schema.BINARY_MAXPOOL2D: True}.get(
        spec["op"], spec["attributes"].get("packed_output") == 1)
    return [TensorProto.INT32 if packed else TensorProto.FLOAT, TensorProto.INT32]


def build(spec: Spec) -> tuple[onnx.ModelProto, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The model, its feeds, and every input's value by name (feeds and constants)."""
    rng = np.random.default_rng(spec["data_seed"])
    elements = sum(float(np.prod(i["shape"], dtype=np.float64)) for i in spec["inputs"] if i["fill"] != "none")
    if elements > BUILD_LIMIT:
        raise ValueError(f"inputs of {elements:.3g} elements are too many to build")
    values = {i["name"]: _fill(rng, i) for i in spec["inputs"] if i["fill"] != "none"}
    constants = {i["name"] for i in spec["inputs"] if i["constant"] and i["fill"] != "none"}
    outputs = ["y", "y_bits"][:spec["outputs"]]
    node = schema.make_node(spec["op"], [i["name"] for i in spec["inputs"]], outputs, **spec["attributes"])
    graph = helper.make_graph(
        [node], "fuzz",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), list(v.shape))
         for n, v in values.items() if n not in constants],
        [helper.make_tensor_value_info(n, t, None) for n, t in zip(outputs, _output_types(spec), strict=False)],
        [numpy_helper.from_array(values[n], n) for n in constants])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), schema.opset_import()])
    return model, {n: v for n, v in values.items() if n not in constants}, values


def _reference_cost(spec: Spec, values: dict[str, np.ndarray]) -> int:
    """A bound on the elements the reference touches: the padded input times the kernel, or the tensors."""
    attributes, x = spec["attributes"], values.get("x")
    total = sum(int(np.prod(v.shape, dtype=np.float64)) for v in values.values())
    if spec["op"] in (schema.BINARY_CONV2D, schema.BINARY_MAXPOOL2D) and x is not None and x.ndim == 4:
        pads = attributes.get("pads", [0, 0, 0, 0])
        pads = pads if isinstance(pads, list) and len(pads) == 4 else [0, 0, 0, 0]
        spatial = (1, 2) if x.dtype == np.int32 else (2, 3)
        padded = float(x.shape[0]) * max(x.shape[spatial[0]] + pads[0] + pads[2], 1) * \
            max(x.shape[spatial[1]] + pads[1] + pads[3], 1) * max(float(x.shape[3 if x.dtype == np.int32 else 1]), 1)
        w = values.get("w")
        total += padded * (int(np.prod(w.shape[:3], dtype=np.float64)) if w is not None and w.ndim == 4 else 1) * 32
    return int(min(total, 2**62))


def output_bytes(spec: Spec, values: dict[str, np.ndarray]) -> float:
    """About how many bytes the op's output takes when the case is valid (0 when that cannot be told)."""
    a, x, w = spec["attributes"], values.get("x"), values.get("w")
    if spec["op"] == schema.BINARY_DENSE and x is not None and w is not None and x.ndim >= 1 and w.ndim >= 1:
        return 4.0 * x.shape[0] * w.shape[0]
    if spec["op"] == schema.BIT_UNPACK:
        return 4.0 * WORD_BITS * x.size
    if spec["op"] not in (schema.BINARY_CONV2D, schema.BINARY_MAXPOOL2D) or x is None or x.ndim != 4:
        return 4.0 * sum(v.size for v in values.values())
    try:
        kernel = a["kernel_shape"] if spec["op"] == schema.BINARY_MAXPOOL2D else list(w.shape[1:3])
        sizes = x.shape[1:3] if x.dtype == np.int32 else x.shape[2:]
        strides, dilations = a.get("strides", [1, 1]), a.get("dilations", [1, 1])
        pads = a.get("pads", [0, 0, 0, 0])
        pixels = np.prod([max(0, _window_out(sizes[i], pads[i] + pads[i + 2], kernel[i], dilations[i], strides[i]))
                          for i in range(2)], dtype=np.float64)
        channels = w.shape[0] if w is not None and w.ndim == 4 else x.shape[3]
    except (KeyError, IndexError, TypeError, ZeroDivisionError):
        return 0.0
    return 4.0 * x.shape[0] * pixels * channels


def expected(spec: Spec, values: dict[str, np.ndarray]) -> list[np.ndarray] | str:
    """The reference's outputs, or why there are none: 'refused: <reason>' when the reference rejects the case,
    'unchecked: <reason>' beyond REFERENCE_LIMIT or outside the contract."""
    try:
        _check_reference_contract(spec, values)
    except (ValueError, TypeError, KeyError, IndexError) as error:
        return f"refused: {type(error).__name__}: {error}"
    if _reference_cost(spec, values) > REFERENCE_LIMIT:
        return "unchecked: too large for the reference"
    if _activation_tail_bits(spec, values):
        return "unchecked: packed input with tail bits set (outside the contract, docs/ops.md)"
    kwargs = copy.deepcopy(spec["attributes"])
    args = [values.get(i["name"]) for i in spec["inputs"]]
    functions = {schema.BIT_PACK: reference.bit_pack, schema.BIT_UNPACK: reference.bit_unpack,
                 schema.BINARY_CONV2D: reference.binary_conv2d, schema.BINARY_DENSE: reference.binary_dense,
                 schema.BINARY_MAXPOOL2D: reference.binary_maxpool2d}
    try:
        y = functions[spec["op"]](*args, **kwargs)
    except (ValueError, TypeError, KeyError, IndexError, AssertionError) as error:
        return f"refused: {type(error).__name__}: {error}"
    if spec["outputs"] == 2:
        return [y, reference.bit_pack(y)]
    return [y]


def _activation_tail_bits(spec: Spec, values: dict[str, np.ndarray]) -> bool:
    x, channels = values.get("x"), spec["attributes"].get("channels_in", spec["attributes"].get("channels"))
    if x is None or x.dtype != np.int32 or not isinstance(channels, int) or x.size == 0 or channels % WORD_BITS == 0:
        return False
    return x.shape[-1] == words_for(channels) and bool(np.any(x[..., -1] >> (channels % WORD_BITS)))


def _check_reference_contract(spec: Spec, values: dict[str, np.ndarray]) -> None:
    """What docs/ops.md requires and the numpy reference, written to be read, does not check itself: element types,
    ranks, word counts, attribute ranges and padding bits. Raises ValueError naming the first violation."""
    a = spec["attributes"]

    def require(condition: bool, what: str) -> None:
        if not condition:
            raise ValueError(what)

    def ints(name: str, length: int, default: list[int], low: int) -> list[int]:
        value = a.get(name, default)
        require(isinstance(value, list) and len(value) == length and all(isinstance(v, int) for v in value),
                f"{name} must be {length} ints")
        require(all(low <= v <= 2**24 for v in value), f"{name} out of range")
        return value

    for v in values.values():
        require(all(d <= 2**24 for d in v.shape), "dimension above 2^24")
    for key, value in a.items():
        require(not isinstance(value, float), f"{key} is a float")
    x = values.get("x")
    op = spec["op"]
    if op == schema.BIT_PACK:
        require(x.dtype == np.float32 and x.ndim >= 2, "BitPack input")
        return
    if op == schema.BIT_UNPACK:
        require(isinstance(a.get("channels"), int) and 0 <= a["channels"] <= 2**24, "channels")
        require(x.dtype == np.int32 and x.ndim >= 2 and x.shape[-1] == words_for(a["channels"]), "BitUnpack input")
        return
    if op == schema.BINARY_MAXPOOL2D:
        kernel = ints("kernel_shape", 2, [], 1)
        ints("strides", 2, [1, 1], 1)
        pads = ints("pads", 4, [0, 0, 0, 0], 0)
        require(all(pads[i] < kernel[i % 2] for i in range(4)), "pads below kernel")
        require(x.ndim == 4, "maxpool input rank")
        _require_window_fits(x.shape[1:3], kernel, ints("dilations", 2, [1, 1], 1), pads)
        require(isinstance(a.get("channels"), int) and 1 <= a["channels"] <= 2**24, "channels")
        require(a.get("ceil_mode", 0) == 0, "ceil_mode")
        require(x.dtype == np.int32 and x.ndim == 4 and x.shape[3] == words_for(a["channels"]), "maxpool input")
        return
    channels_in, group = a.get("channels_in"), a.get("group", 1)
    require(isinstance(channels_in, int) and 1 <= channels_in <= 2**24, "channels_in")
    require(isinstance(group, int) and group >= 1 and channels_in % group == 0, "group")
    require(a.get("packed_output", 0) in (0, 1) and a.get("pad_value", 0) in (-1, 0, 1), "packed_output/pad_value")
    require(a.get("activation", "NONE") in ("NONE", "RELU"), "activation")
    require(a.get("final_activation", "NONE") in ("NONE", "RELU"), "final_activation")
    packed_out = a.get("packed_output", 0) == 1
    require(not (packed_out and a.get("activation", "NONE") == "RELU"), "RELU with packed output")
    w = values.get("w")
    require(w is not None and w.dtype == np.int32, "weights type")
    dense = op == schema.BINARY_DENSE
    per_group = channels_in // group
    require(w.ndim == (2 if dense else 4) and w.shape[-1] == words_for(per_group) and w.shape[0] >= 1 and
            w.shape[0] % group == 0 and min(w.shape) >= 1, "weights shape")
    if per_group % WORD_BITS:
        require(not np.any(w[..., -1] >> (per_group % WORD_BITS)), "weight padding bits")
    require(x.ndim == (2 if dense else 4), "input rank")
    if not dense:
        ints("strides", 2, [1, 1], 1)
        require("kernel_shape" not in a or a["kernel_shape"] == list(w.shape[1:3]), "kernel_shape")
        require(w.shape[1] * w.shape[2] * per_group <= 2**30, "accumulator range")
        _require_window_fits(x.shape[1:3] if x.dtype == np.int32 else x.shape[2:], w.shape[1:3],
                             ints("dilations", 2, [1, 1], 1), ints("pads", 4, [0, 0, 0, 0], 0))
    if x.dtype == np.int32:
        require(x.shape[-1] == words_for(channels_in), "packed input words")
    else:
        require(x.dtype == np.float32 and x.shape[1] == channels_in, "float input")
    out_c = w.shape[0]
    first, second = values.get("first"), values.get("second")
    want = np.int32 if packed_out else np.float32
    for p in (first, second):
        require(p is not None and p.dtype == want and p.shape == (out_c,), "output parameters")
    if packed_out:
        require(bool(np.all(np.isin(second, (-1, 0, 1)))), "direction values")
    optional = {i["name"] for i in spec["inputs"][4:] if i["fill"] != "none"}
    require(not (packed_out and optional), "post inputs with packed output")
    require(("post_multiplier" in optional) == ("post_bias" in optional), "post_multiplier with post_bias")
    for name in ("post_multiplier", "post_bias"):
        if name in optional:
            require(values[name].dtype == np.float32 and values[name].shape == (out_c,), name)
    if "residual" in optional:
        require(values["residual"].dtype == np.float32, "residual type")
    if spec["outputs"] == 2:
        require(not packed_out and group == 1 and not dense, "signs output")


def _require_window_fits(sizes: tuple[int, ...], kernel: list[int], dilations: list[int], pads: list[int]) -> None:
    """The padded input holds one dilated kernel on each axis (docs/ops.md)."""
    for axis in range(2):
        if sizes[axis] + pads[axis] + pads[axis + 2] < (kernel[axis] - 1) * dilations[axis] + 1:
            raise ValueError("the dilated kernel is larger than the padded input")
