"""QONNX frontend: Brevitas' export_qonnx output -> canonical float ONNX that onnxruntime runs.

QONNX's binary quantizer is BipolarQuant(x, scale) = where(x / scale >= 0, +1, -1) * scale (0 -> +1). With a
constant positive scale, x / scale >= 0 exactly when x >= 0 (x / scale can round to -0 only for |x| below
scale * 2^-149, far under any activation or weight a model computes), so it becomes the standard
Where(x >= 0, 1, -1), times the scale unless that is 1: weights then fold into +-scale, activations are the
binarizer the passes recognise.

Multi-bit quantizers become the float arithmetic QONNX defines them by, op for op (so the lowered model computes
what QONNX's own execution computes, rounding included); the binary layers around them are converted as usual:
- Quant(x, scale, zeropt, bitwidth; signed, narrow, rounding_mode) = (rounding(clamp(x / scale + zeropt, lo, hi))
  - zeropt) * scale, lo/hi the bitwidth's integer range (signed, narrow), rounding ROUND (half to even, ONNX
  Round), CEIL, FLOOR or ROUND_TO_ZERO; a signed 1-bit Quant is bipolar: where(x / scale + zeropt >= 0, 1, -1);
- Trunc(x, scale, zeropt, in_bitwidth, out_scale, out_bitwidth; signed, narrow, rounding_mode) = (rounding(clamp(
  round(x / scale + zeropt) / t, lo, hi)) - zeropt / t) * out_scale with t = 2^round(log2(out_scale / scale)).
Other QONNX ops (MultiThreshold, FloatQuant, ...) are refused with their name.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from bnn2onnx.errors import ConversionError

QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general")


def is_qonnx(model: onnx.ModelProto) -> bool:
    return any(node.domain in QONNX_DOMAINS for node in model.graph.node)


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


class _Emitter:
    """Standard-ONNX nodes for one QONNX node, with fresh tensor names."""

    def __init__(self, node: onnx.NodeProto, index: int) -> None:
        self.prefix, self.count, self.nodes = f"{node.name or node.op_type}_{index}", 0, []

    def constant(self, value: float) -> str:
        return self.op("Constant", [], value=helper.make_tensor("value", onnx.TensorProto.FLOAT, [], [value]))

    def bipolar(self, x: str, output: str | None = None) -> str:
        """where(x >= 0, +1, -1): QONNX's binary level (0 -> +1), the binarizer the passes recognise."""
        nonnegative = self.op("GreaterOrEqual", [x, self.constant(0.0)])
        return self.op("Where", [nonnegative, self.constant(1.0), self.constant(-1.0)], output)

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attributes) -> str:
        self.count += 1
        output = output or f"{self.prefix}_{op_type.lower()}{self.count}"
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=f"{self.prefix}_{self.count}",
                                           **attributes))
        return output

    def rounded(self, x: str, mode: str, what: str) -> str:
        mode = mode.upper()
        if mode in ("ROUND", "HALF_EVEN"):
            return self.op("Round", [x])
        if mode in ("CEIL", "FLOOR"):
            return self.op(mode.capitalize(), [x])
        if mode == "ROUND_TO_ZERO":
            return self.op("Mul", [self.op("Sign", [x]), self.op("Floor", [self.op("Abs", [x])])])
        raise ConversionError(f"{what}: rounding_mode {mode!r} is not supported (ROUND, HALF_EVEN, CEIL, FLOOR, "
                              "ROUND_TO_ZERO)")

    def clamped(self, x: str, low: int, high: int) -> str:
        return self.op("Min", [self.op("Max", [x, self.constant(low)]), self.constant(high)])


def _lowered_bipolar_quant(node: onnx.NodeProto, scale: np.ndarray, index: int) -> list[onnx.NodeProto]:
    e = _Emitter(node, index)
    out = node.output[0]
    if np.all(scale == 1):
        e.bipolar(node.input[0], out)
    else:
        e.op("Mul", [e.bipolar(node.input[0]), node.input[1]], out)
    return e.nodes


def _attribute(node: onnx.NodeProto, name: str, default: int | str) -> int | str:
    for attribute in node.attribute:
        if attribute.name == name:
            value = helper.get_attribute_value(attribute)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _integer_range(bits: int, signed: bool, narrow: bool) -> tuple[int, int]:
    if signed:
        return -(2 ** (bits - 1)) + int(narrow), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1 - int(narrow)


def _bit_width(constants: dict[str, np.ndarray], name: str, what: str) -> int:
    bits = constants.get(name)
    if bits is None or bits.size != 1 or float(bits) != int(bits) or int(bits) < 1:
        raise ConversionError(f"{what}: its bit width must be a constant positive integer")
    return int(bits)


def _lowered_quant(node: onnx.NodeProto, constants: dict[str, np.ndarray], index: int) -> list[onnx.NodeProto]:
    what = f"QONNX Quant {node.name or node.output[0]!r}"
    x, scale, zeropt, bits_name = node.input[:4]
    bits = _bit_width(constants, bits_name, what)
    signed, narrow = bool(_attribute(node, "signed", 1)), bool(_attribute(node, "narrow", 0))
    e = _Emitter(node, index)
    shifted = e.op("Add", [e.op("Div", [x, scale]), zeropt])
    if bits == 1 and signed:  # bipolar, as QONNX executes it
        level = e.bipolar(shifted)
    else:
        level = e.rounded(e.clamped(shifted, *_integer_range(bits, signed, narrow)),
                          str(_attribute(node, "rounding_mode", "ROUND")), what)
    e.op("Mul", [e.op("Sub", [level, zeropt]), scale], node.output[0])
    return e.nodes


def _lowered_trunc(node: onnx.NodeProto, constants: dict[str, np.ndarray], index: int) -> list[onnx.NodeProto]:
    what = f"QONNX Trunc {node.name or node.output[0]!r}"
    if len(node.input) != 6:
        raise ConversionError(f"{what}: only the 6-input Trunc (x, scale, zeropt, in_bitwidth, out_scale, "
                              f"out_bitwidth) is supported, this one has {len(node.input)} inputs")
    x, scale, zeropt, _, out_scale, out_bits_name = node.input
    scale_value, out_scale_value = constants.get(scale), constants.get(out_scale)
    if scale_value is None or out_scale_value is None:
        raise ConversionError(f"{what}: its scales must be constants")
    out_bits = _bit_width(constants, out_bits_name, what)
    signed, narrow = bool(_attribute(node, "signed", 1)), bool(_attribute(node, "narrow", 0))
    e = _Emitter(node, index)
    trunc_scale = (np.float32(2.0) ** np.round(np.log2(out_scale_value / scale_value))).astype(np.float32)
    shift = e.op("Constant", [], value=numpy_helper.from_array(trunc_scale, "value"))
    integer = e.op("Round", [e.op("Add", [e.op("Div", [x, scale]), zeropt])])
    level = e.rounded(e.clamped(e.op("Div", [integer, shift]), *_integer_range(out_bits, signed, narrow)),
                      str(_attribute(node, "rounding_mode", "FLOOR")), what)
    e.op("Mul", [e.op("Sub", [level, e.op("Div", [zeropt, shift])]), out_scale], node.output[0])
    return e.nodes


def lower_qonnx(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with every BipolarQuant, Quant and Trunc as standard ONNX; another QONNX op raises."""
    constants = _constants(model)
    nodes: list[onnx.NodeProto] = []
    for index, node in enumerate(model.graph.node):
        if node.domain not in QONNX_DOMAINS:
            nodes.append(node)
            continue
        if node.op_type in ("Quant", "IntQuant"):
            nodes.extend(_lowered_quant(node, constants, index))
            continue
        if node.op_type == "Trunc":
            nodes.extend(_lowered_trunc(node, constants, index))
            continue
        if node.op_type != "BipolarQuant":
            raise ConversionError(f"QONNX {node.op_type} ({node.name or 'unnamed'}) is not supported: bnn2onnx "
                                  "lowers BipolarQuant, Quant and Trunc")
        scale = constants.get(node.input[1])
        if scale is None or scale.size == 0 or not np.all(scale > 0):
            raise ConversionError(f"BipolarQuant {node.name or node.output[0]!r}: its scale must be a positive "
                                  "constant")
        nodes.extend(_lowered_bipolar_quant(node, scale, index))
    lowered = onnx.ModelProto()
    lowered.CopyFrom(model)
    del lowered.graph.node[:]
    lowered.graph.node.extend(nodes)
    kept = [o for o in lowered.opset_import if o.domain not in QONNX_DOMAINS]
    del lowered.opset_import[:]
    lowered.opset_import.extend(kept)
    return lowered
