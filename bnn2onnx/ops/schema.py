"""Names and version of the bnn2onnx custom-op domain (docs/ops.md), and a node builder that uses them."""

from __future__ import annotations

from typing import Any

import onnx
from onnx import helper

DOMAIN = "bnn2onnx"
DOMAIN_VERSION = 1

BIT_PACK = "BitPack"
BIT_UNPACK = "BitUnpack"
BINARY_CONV2D = "BinaryConv2D"
BINARY_DENSE = "BinaryDense"
BINARY_MAXPOOL2D = "BinaryMaxPool2D"
OP_TYPES = (BIT_PACK, BIT_UNPACK, BINARY_CONV2D, BINARY_DENSE, BINARY_MAXPOOL2D)


def make_node(op_type: str, inputs: list[str], outputs: list[str], name: str | None = None,
              **attributes: Any) -> onnx.NodeProto:
    """A node of the bnn2onnx domain; attributes left as None are omitted (the op's default applies)."""
    if op_type not in OP_TYPES:
        raise ValueError(f"unknown bnn2onnx op {op_type!r}; known: {', '.join(OP_TYPES)}")
    given = {key: value for key, value in attributes.items() if value is not None}
    return helper.make_node(op_type, inputs, outputs, name=name, domain=DOMAIN, **given)


def opset_import() -> onnx.OperatorSetIdProto:
    return helper.make_opsetid(DOMAIN, DOMAIN_VERSION)
