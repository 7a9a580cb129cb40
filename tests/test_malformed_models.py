"""Malformed models reaching the custom ops: each breaks one validation rule and must give an onnxruntime error
that names the op and the problem (at session creation or at run), never a crash or a wrong answer."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from ort_helpers import CONCRETE_TYPING, session

from bnn2onnx.ops import schema
from bnn2onnx.ops.bitpacking import pack_bits

RNG = np.random.default_rng(0)
CONV_X = RNG.standard_normal((1, 40, 6, 6)).astype(np.float32)
CONV_W = pack_bits(RNG.random((8, 3, 3, 40)) < 0.5)  # [O, KH, KW, words(40)=2]
DENSE_X = RNG.standard_normal((2, 70)).astype(np.float32)
DENSE_W = pack_bits(RNG.random((5, 70)) < 0.5)
PACKED_40 = pack_bits(RNG.random((1, 6, 6, 40)) < 0.5)
FLOAT_PARAMS = {"first": np.ones(8, np.float32), "second": np.zeros(8, np.float32)}
PACKED_PARAMS = {"first": np.zeros(8, np.int32), "second": np.ones(8, np.int32)}


@dataclass
class Malformed:
    op: str
    message: str  # must appear in the error
    inputs: dict[str, np.ndarray]  # graph inputs, fed at run
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    order: tuple[str, ...] = ("x",)
    output_type: int = TensorProto.FLOAT
    signs_output: bool = False  # BinaryConv2D's output 1

    def has_concrete_types(self) -> bool:
        """Whether a concretely typed binary layer (ort_helpers.CONCRETE_TYPING) exists for these types: input 0
        float or packed int32, inputs 2-3 and output 0 all float (float output) or all int32 (packed output)."""
        if self.op not in (schema.BINARY_CONV2D, schema.BINARY_DENSE):
            return True
        values = {**self.inputs, **self.constants}
        allowed = {np.dtype(np.float32), np.dtype(np.int32)}
        mode = {values[name].dtype for name in self.order[2:4]} | {helper.tensor_dtype_to_np_dtype(self.output_type)}
        return values["x"].dtype in allowed and len(mode) == 1 and mode <= allowed

    def model(self) -> onnx.ModelProto:
        outputs = ["y", "y_bits"] if self.signs_output else ["y"]
        node = schema.make_node(self.op, list(self.order), outputs, **self.attributes)
        graph = helper.make_graph(
            [node], "malformed",
            [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
             for k, v in self.inputs.items()],
            [helper.make_tensor_value_info("y", self.output_type, None)] +
            [helper.make_tensor_value_info("y_bits", TensorProto.INT32, None)] * self.signs_output,
            [numpy_helper.from_array(v, k) for k, v in self.constants.items()])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), schema.opset_import()])


def with_optional_inputs(case: Malformed, optional: list[tuple[str, np.ndarray | None]]) -> Malformed:
    """Appends inputs 4-6 (name, value) to a binary layer's node: a residual is fed at run, the others are
    constants, and an empty name skips an input."""
    for name, value in optional:
        case.order += (name,)
        if name:
            (case.inputs if name == "residual" else case.constants)[name] = value
    return case


def conv(message: str, x: np.ndarray = CONV_X, w: np.ndarray = CONV_W, params: dict | None = None,
         runtime_weights: bool = False, optional: list[tuple[str, np.ndarray | None]] = (), **attributes: Any
         ) -> Malformed:
    params = FLOAT_PARAMS if params is None else params
    attributes = {"channels_in": 40, "pads": [1, 1, 1, 1], **attributes}
    constants = {"first": params["first"], "second": params["second"]}
    inputs = {"x": x}
    (inputs if runtime_weights else constants)["w"] = w
    output_type = TensorProto.INT32 if attributes.get("packed_output") else TensorProto.FLOAT
    return with_optional_inputs(Malformed(schema.BINARY_CONV2D, message, inputs, constants, attributes,
                                          ("x", "w", "first", "second"), output_type), list(optional))


def dense(message: str, x: np.ndarray = DENSE_X, w: np.ndarray = DENSE_W, bias_length: int = 5,
          optional: list[tuple[str, np.ndarray | None]] = (), **attributes: Any) -> Malformed:
    constants = {"w": w, "first": np.ones(5, np.float32), "second": np.zeros(bias_length, np.float32)}
    return with_optional_inputs(Malformed(schema.BINARY_DENSE, message, {"x": x}, constants,
                                          {"channels_in": 70, **attributes}, ("x", "w", "first", "second")),
                                list(optional))


def identity_post(channels: int) -> list[tuple[str, np.ndarray]]:
    """An identity post affine map: a residual after it, not after skipped inputs, which onnxruntime 1.23 and older
    crash on (docs/ops.md)."""
    return [("post_multiplier", np.ones(channels, np.float32)), ("post_bias", np.zeros(channels, np.float32))]


POST_8 = identity_post(8)


def maxpool(message: str, x: np.ndarray = PACKED_40, **attributes: Any) -> Malformed:
    return Malformed(schema.BINARY_MAXPOOL2D, message, {"x": x}, {},
                     {"channels": 40, "kernel_shape": [2, 2], **attributes}, output_type=TensorProto.INT32)


CASES = {
    "bitpack_rank1": Malformed(schema.BIT_PACK, "input must have rank >= 2", {"x": np.zeros(5, np.float32)},
                               output_type=TensorProto.INT32),
    "bitunpack_no_channels": Malformed(schema.BIT_UNPACK, "required attribute 'channels' is missing",
                                       {"x": PACKED_40}),
    "bitunpack_words_mismatch": Malformed(schema.BIT_UNPACK, "has 2 words per pixel but channels=70 needs 3",
                                          {"x": PACKED_40}, attributes={"channels": 70}),
    "bitunpack_negative_channels": Malformed(schema.BIT_UNPACK, "attribute 'channels' must be in",
                                             {"x": PACKED_40}, attributes={"channels": -3}),
    "bitunpack_float_channels": Malformed(schema.BIT_UNPACK, "attribute 'channels' has the wrong type",
                                          {"x": PACKED_40}, attributes={"channels": 40.0}),
    "conv_no_channels_in": conv("required attribute 'channels_in' is missing", channels_in=None),
    "conv_packed_words": conv("packed input (input 0) shape [1,6,6,2] has 2 words per pixel but channels_in=70 "
                              "needs 3", x=PACKED_40, channels_in=70, w=pack_bits(RNG.random((8, 3, 3, 70)) < 0.5)),
    "conv_float_channels": conv("float input (input 0) shape [1,40,6,6] has 40 channels but channels_in=64",
                                channels_in=64, w=pack_bits(RNG.random((8, 3, 3, 64)) < 0.5)),
    "conv_weights_rank": conv("weights (input 1) must have rank 4", w=CONV_W[0]),
    "conv_weights_words": conv("has 1 words per tap but channels_in=40/group=1 needs 2", w=CONV_W[..., :1]),
    "conv_group_divides": conv("attribute 'group'=3 must be >= 1 and divide channels_in=40", group=3),
    "conv_out_channels_group": conv("output channels must be >= 1 and a multiple of group=5", group=5,
                                    w=pack_bits(RNG.random((8, 3, 3, 8)) < 0.5)),
    "conv_kernel_shape": conv("attribute 'kernel_shape' [5,5] does not match weights shape", kernel_shape=[5, 5]),
    "conv_zero_stride": conv("attribute 'strides' values must be in [1, ", strides=[0, 1]),
    "conv_dilations_length": conv("attribute 'dilations' must have 2 values", dilations=[1, 1, 1]),
    "conv_negative_pads": conv("attribute 'pads' values must be in [0, ", pads=[-1, 0, 0, 0]),
    "conv_pad_value": conv("attribute 'pad_value' must be 0 (zero padding), 1 (+1 padding) or -1", pad_value=2),
    "conv_activation": conv("attribute 'activation' must be \"NONE\" or \"RELU\", got \"TANH\"", activation="TANH"),
    "conv_final_activation": conv("attribute 'final_activation' must be \"NONE\" or \"RELU\", got \"SIGMOID\"",
                                  final_activation="SIGMOID"),
    "dense_final_relu_packed": replace(dense("final_activation=\"RELU\" needs float output", packed_output=1,
                                             final_activation="RELU"), output_type=TensorProto.INT32),
    "conv_relu_packed": conv("activation=\"RELU\" needs float output", activation="RELU", packed_output=1,
                             params=PACKED_PARAMS),
    "conv_multiplier_length": conv("multiplier (input 2) must have shape [8], got [3]",
                                   params={"first": np.ones(3, np.float32), "second": np.zeros(8, np.float32)}),
    "conv_threshold_type": conv("threshold (input 2) must be int32 when packed_output=1, got float",
                                packed_output=1),
    "conv_direction_values": conv("direction (input 3) values must be -1, 0 or 1, got 5 at channel 0",
                                  packed_output=1, params={"first": np.zeros(8, np.int32),
                                                           "second": np.full(8, 5, np.int32)}),
    "conv_kernel_too_large": conv("the dilated kernel (9) is larger than the padded input height (6 + pads 1+1)",
                                  dilations=[4, 1]),
    "conv_input_rank": conv("input (input 0) must have rank 4", x=CONV_X[0]),
    "conv_weight_tail_bits": conv("padding bits must be 0", w=np.full((8, 3, 3, 2), -1, np.int32)),
    "conv_absurd_channels": conv("attribute 'channels_in' must be in [1, ", channels_in=2**40),
    "conv_float16_input": conv("must be float or packed int32, got float16", x=CONV_X.astype(np.float16)),
    "conv_runtime_weights_words": conv("has 1 words per tap but channels_in=40/group=1 needs 2",
                                       w=CONV_W[..., :1], runtime_weights=True),
    "conv_post_packed": conv("post_multiplier, post_bias and residual (inputs 4-6) need float output",
                             packed_output=1, params=PACKED_PARAMS, optional=POST_8),
    "conv_post_without_bias": conv("post_multiplier (input 4) and post_bias (input 5) are given together",
                                   optional=POST_8[:1]),
    "conv_post_length": conv("post_multiplier (input 4) must have shape [8], got [3]",
                             optional=[("post_multiplier", np.ones(3, np.float32)), POST_8[1]]),
    "conv_signs_packed": replace(conv("output 1 (the packed signs of output 0) needs float output (packed_output=0) "
                                      "and group=1", packed_output=1, params=PACKED_PARAMS), signs_output=True),
    "conv_signs_groups": replace(conv("output 1 (the packed signs of output 0) needs float output", group=2,
                                      w=pack_bits(RNG.random((8, 3, 3, 20)) < 0.5)), signs_output=True),
    "conv_residual_shape": conv("residual (input 6) shape [1,8,5,5] differs from the output shape [1,8,6,6]",
                                optional=[*POST_8, ("residual", np.zeros((1, 8, 5, 5), np.float32))]),
    "dense_residual_shape": dense("residual (input 6) shape [5,2] differs from the output shape [2,5]",
                                  optional=[*identity_post(5), ("residual", np.zeros((5, 2), np.float32))]),
    "dense_weights_words": dense("weights (input 1) shape [5,2] has 2 words per row but channels_in=70 needs 3",
                                 w=DENSE_W[:, :2]),
    "dense_bias_length": dense("bias (input 3) must have shape [5], got [4]", bias_length=4),
    "dense_input_rank": dense("input (input 0) must have rank 2", x=DENSE_X[None]),
    "dense_zero_channels": dense("attribute 'channels_in' must be in [1, ", channels_in=0),
    "maxpool_no_kernel": maxpool("required attribute 'kernel_shape' is missing", kernel_shape=None),
    "maxpool_pads_kernel": maxpool("must be >= 0 and smaller than kernel_shape [2,2]", pads=[2, 0, 0, 0]),
    "maxpool_words": maxpool("has 2 words per pixel but channels=100 needs 4", channels=100),
    "maxpool_ceil_mode": maxpool("ceil_mode=1 is not supported", ceil_mode=1),
    "maxpool_negative_stride": maxpool("attribute 'strides' values must be in [1, ", strides=[-1, 1]),
    "conv_padded_image_too_large": conv("pads [0,0,16777215,16777215]: a padded image of more than 2^31 packed "
                                        "words is not supported", x=np.zeros((1, 1, 1, 2**16), np.int32),
                                        w=np.zeros((8, 2, 2, 2**16), np.int32), channels_in=2**21,
                                        dilations=[2**24 - 1] * 2, pads=[0, 0, 2**24 - 1, 2**24 - 1]),
}
# Empty tensors with a dimension beyond 2^31, which numpy on a 32-bit platform (armv7) cannot describe.
if np.dtype(np.intp).itemsize == 8:
    CASES |= {
        "bitpack_huge_empty_batch": Malformed(schema.BIT_PACK, "input 0 shape [1099511627776,1,0] has a dimension "
                                              "outside [0, 16777216]", {"x": np.zeros((2**40, 1, 0), np.float32)},
                                              output_type=TensorProto.INT32),
        "conv_huge_empty_input": conv("input 0 shape [1,0,35184372088832,1] has a dimension outside [0, 16777216]",
                                      x=np.zeros((1, 0, 2**45, 1), np.int32), channels_in=32,
                                      w=pack_bits(RNG.random((8, 1, 1, 32)) < 0.5)),
    }


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_model_gives_error_naming_op_and_problem(name: str) -> None:
    case = CASES[name]
    with pytest.raises(Exception) as error:
        session(case.model()).run(None, case.inputs)
    message = str(error.value)
    if CONCRETE_TYPING and not case.has_concrete_types():
        assert f"operator ({case.op})" in message or f"implementation for {case.op}(1)" in message, message
        return
    assert f"[{case.op}]" in message, message
    assert case.message in message, message


def test_input_type_outside_the_op_schema_is_rejected_by_onnxruntime() -> None:
    case = Malformed(schema.BIT_PACK, "", {"x": np.zeros((1, 3), np.int32)}, output_type=TensorProto.INT32)
    with pytest.raises(Exception, match="BitPack"):
        session(case.model())
