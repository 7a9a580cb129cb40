"""The packed binary format (docs/ops.md, "Bit convention"), in numpy.

32 channels per int32 word, channel c in word c // 32 at bit c % 32 (least significant bit first); bit 1 means
-1 (the value was < 0), bit 0 means +1 (so 0 and -0.0 pack as +1, like larq's sign); tail bits are 0.
The converter packs weights with these functions and the reference computes with them, so there is one
definition of the format on the Python side (custom_ops/src/kernels/bit_convention.h is the C++ one).
"""

from __future__ import annotations

import numpy as np

WORD_BITS = 32


def words_for(channels: int) -> int:
    return -(-channels // WORD_BITS)


def pack_bits(negative: np.ndarray) -> np.ndarray:
    """bool [..., C] (True = -1) -> int32 [..., words_for(C)], tail bits 0."""
    negative = np.asarray(negative, dtype=bool)
    channels = negative.shape[-1]
    padded = np.zeros(negative.shape[:-1] + (words_for(channels) * WORD_BITS,), dtype=bool)
    padded[..., :channels] = negative
    as_bytes = np.packbits(padded, axis=-1, bitorder="little")
    return np.ascontiguousarray(as_bytes).view("<u4").astype(np.uint32).view(np.int32)


def unpack_bits(packed: np.ndarray, channels: int) -> np.ndarray:
    """int32 [..., words] -> bool [..., channels] (True = -1); tail bits are ignored."""
    packed = np.ascontiguousarray(packed, dtype=np.int32)
    if packed.shape[-1] != words_for(channels):
        raise ValueError(f"{packed.shape[-1]} words cannot hold exactly {channels} channels "
                         f"(needs {words_for(channels)})")
    as_bytes = packed.astype("<i4").view(np.uint8)
    return np.unpackbits(as_bytes, axis=-1, bitorder="little")[..., :channels].astype(bool)


def signs(values: np.ndarray) -> np.ndarray:
    """The +-1 value each float stands for under the convention (x < 0 -> -1, otherwise +1), as int8."""
    return np.where(np.asarray(values) < 0, -1, 1).astype(np.int8)


def pack_conv_weights(weights: np.ndarray) -> np.ndarray:
    """Float conv weights [O, C/group, KH, KW] (ONNX layout) -> packed [O, KH, KW, words(C/group)] by sign."""
    return pack_bits(np.transpose(np.asarray(weights), (0, 2, 3, 1)) < 0)


def pack_dense_weights(weights: np.ndarray) -> np.ndarray:
    """Float dense weights [M, K] (one row per output) -> packed [M, words(K)] by sign."""
    return pack_bits(np.asarray(weights) < 0)
