"""Numpy reference of every bnn2onnx op: docs/ops.md in executable form. Written to be read, not to be fast.

The C++ kernels are tested against these functions, and these functions are tested against onnxruntime's
standard Conv/MatMul/MaxPool on +-1 float tensors, which anchors the spec to what frameworks compute.
Every function takes the op's inputs as numpy arrays and its attributes as keyword arguments with the op's
defaults, and returns the op's output.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bnn2onnx.ops.bitpacking import pack_bits, signs, unpack_bits


def bit_pack(x: np.ndarray) -> np.ndarray:
    """BitPack: float [N, C, *spatial] -> int32 [N, *spatial, words(C)]; x < 0 -> bit 1 (-1), else bit 0 (+1)."""
    return pack_bits(np.moveaxis(np.asarray(x, dtype=np.float32) < 0, 1, -1))


def bit_unpack(x: np.ndarray, *, channels: int) -> np.ndarray:
    """BitUnpack: int32 [N, *spatial, words] -> float [N, channels, *spatial] of +-1."""
    negative = unpack_bits(x, channels)
    return np.moveaxis(np.where(negative, -1.0, 1.0).astype(np.float32), -1, 1)


def _input_signs(x: np.ndarray, channels_in: int) -> np.ndarray:
    """+-1 values of a binary op's input, channel axis 1: float input by sign, packed input by its bits."""
    if x.dtype == np.int32:
        return np.moveaxis(np.where(unpack_bits(x, channels_in), -1, 1), -1, 1).astype(np.int64)
    if x.shape[1] != channels_in:
        raise ValueError(f"float input has {x.shape[1]} channels, channels_in={channels_in}")
    return signs(x).astype(np.int64)


def _output_stage(acc: np.ndarray, first: np.ndarray, second: np.ndarray, packed_output: int,
                  activation: str, post: tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None],
                  final_activation: str = "NONE") -> np.ndarray:
    """Output modes, per output channel o on axis 1 of the integer dot products `acc`.

    float  (packed_output=0): y = multiplier[o] * acc + bias[o] in float32 (one rounding after the multiply,
                              one after the add), then ReLU if activation="RELU"; then, when given,
                              y = post_multiplier[o] * y + post_bias[o] (rounded likewise) and y = y + residual;
                              last ReLU if final_activation="RELU". Shape as acc. `post` is (post_multiplier,
                              post_bias, residual), each optional.
    packed (packed_output=1): the value is +1 iff direction[o] * acc >= threshold[o], else -1; channel axis
                              moved last and packed.
    """
    per_channel = (1, -1) + (1,) * (acc.ndim - 2)
    post_multiplier, post_bias, residual = post
    if (post_multiplier is None) != (post_bias is None):
        raise ValueError("post_multiplier and post_bias are given together or not at all")
    if packed_output:
        if any(p is not None for p in post) or final_activation != "NONE":
            raise ValueError("post_multiplier, post_bias, residual and final_activation need float output "
                             "(packed_output=0)")
        direction = np.asarray(second, np.int64).reshape(per_channel)
        threshold = np.asarray(first, np.int64).reshape(per_channel)
        return pack_bits(np.moveaxis(direction * acc < threshold, 1, -1))
    multiplier = np.asarray(first, np.float32).reshape(per_channel)
    bias = np.asarray(second, np.float32).reshape(per_channel)
    y = (acc.astype(np.float32) * multiplier).astype(np.float32) + bias
    if activation == "RELU":
        y = np.where(y < 0, np.float32(0), y)
    if post_multiplier is not None:
        y = (y * np.asarray(post_multiplier, np.float32).reshape(per_channel)).astype(np.float32)
        y = y + np.asarray(post_bias, np.float32).reshape(per_channel)
    if residual is not None:
        if residual.shape != y.shape:
            raise ValueError(f"residual shape {residual.shape} differs from the output shape {y.shape}")
        y = y + np.asarray(residual, np.float32)
    if final_activation == "RELU":
        y = np.where(y < 0, np.float32(0), y)
    return y.astype(np.float32)


def binary_conv2d_accumulator(x: np.ndarray, weights: np.ndarray, *, channels_in: int,
                              strides: Sequence[int] = (1, 1), dilations: Sequence[int] = (1, 1),
                              pads: Sequence[int] = (0, 0, 0, 0), group: int = 1, pad_value: int = 0,
                              kernel_shape: Sequence[int] | None = None) -> np.ndarray:
    """The integer +-1 convolution of BinaryConv2D, int64 [N, O, OH, OW] (before the output stage).

    acc[n, o, oh, ow] = sum over c < C/group, kh, kw of  X[n, g*C/group + c, ih, iw] * W[o, c, kh, kw]
    with g = o // (O/group), ih = oh*stride_h - pad_top + kh*dilation_h (iw likewise), and X outside the input
    equal to 0 (pad_value=0: padded positions contribute nothing), +1 (pad_value=1) or -1 (pad_value=-1).
    """
    if pad_value not in (-1, 0, 1):
        raise ValueError(f"pad_value must be -1, 0 or 1, got {pad_value}")
    xs = _input_signs(x, channels_in)  # [N, C, H, W]
    w = np.where(unpack_bits(weights, channels_in // group), -1, 1).astype(np.int64)  # [O, KH, KW, Cg]
    w = np.transpose(w, (0, 3, 1, 2))  # [O, Cg, KH, KW]
    out_c, per_group, kh_size, kw_size = w.shape
    if kernel_shape is not None and tuple(kernel_shape) != (kh_size, kw_size):
        raise ValueError(f"kernel_shape {kernel_shape} does not match weights {weights.shape}")
    top, left, bottom, right = pads
    xp = np.pad(xs, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=pad_value)
    (sh, sw), (dh, dw) = strides, dilations
    out_h = (xp.shape[2] - ((kh_size - 1) * dh + 1)) // sh + 1
    out_w = (xp.shape[3] - ((kw_size - 1) * dw + 1)) // sw + 1
    acc = np.zeros((xs.shape[0], out_c, out_h, out_w), dtype=np.int64)
    out_per_group = out_c // group
    for g in range(group):
        inputs = slice(g * per_group, (g + 1) * per_group)
        outputs = slice(g * out_per_group, (g + 1) * out_per_group)
        for kh in range(kh_size):
            for kw in range(kw_size):
                window = xp[:, inputs, kh * dh: kh * dh + sh * (out_h - 1) + 1: sh,
                            kw * dw: kw * dw + sw * (out_w - 1) + 1: sw]
                acc[:, outputs] += np.einsum("nchw,oc->nohw", window, w[outputs, :, kh, kw])
    return acc


def binary_conv2d(x: np.ndarray, weights: np.ndarray, first: np.ndarray, second: np.ndarray,
                  post_multiplier: np.ndarray | None = None, post_bias: np.ndarray | None = None,
                  residual: np.ndarray | None = None, *, channels_in: int, strides: Sequence[int] = (1, 1),
                  dilations: Sequence[int] = (1, 1), pads: Sequence[int] = (0, 0, 0, 0), group: int = 1,
                  pad_value: int = 0, packed_output: int = 0, activation: str = "NONE",
                  final_activation: str = "NONE", kernel_shape: Sequence[int] | None = None) -> np.ndarray:
    """BinaryConv2D: float [N, O, OH, OW] or packed int32 [N, OH, OW, words(O)]."""
    acc = binary_conv2d_accumulator(x, weights, channels_in=channels_in, strides=strides, dilations=dilations,
                                    pads=pads, group=group, pad_value=pad_value, kernel_shape=kernel_shape)
    return _output_stage(acc, first, second, packed_output, activation, (post_multiplier, post_bias, residual),
                         final_activation)


def binary_dense(x: np.ndarray, weights: np.ndarray, first: np.ndarray, second: np.ndarray,
                 post_multiplier: np.ndarray | None = None, post_bias: np.ndarray | None = None,
                 residual: np.ndarray | None = None, *, channels_in: int, packed_output: int = 0,
                 activation: str = "NONE", final_activation: str = "NONE") -> np.ndarray:
    """BinaryDense: acc[n, m] = sum_k X[n, k] * W[m, k]; float [N, M] or packed int32 [N, words(M)]."""
    xs = _input_signs(x, channels_in)
    w = np.where(unpack_bits(weights, channels_in), -1, 1).astype(np.int64)
    return _output_stage(xs @ w.T, first, second, packed_output, activation, (post_multiplier, post_bias, residual),
                         final_activation)


def binary_maxpool2d(x: np.ndarray, *, channels: int, kernel_shape: Sequence[int],
                     strides: Sequence[int] = (1, 1), dilations: Sequence[int] = (1, 1),
                     pads: Sequence[int] = (0, 0, 0, 0), ceil_mode: int = 0) -> np.ndarray:
    """BinaryMaxPool2D: packed [N, H, W, words] -> packed [N, OH, OW, words]; the max over each window of
    the +-1 values, padded positions ignored (as ONNX MaxPool); equals sign(MaxPool(x)) on float x."""
    if ceil_mode:
        raise ValueError("ceil_mode=1 is not supported")
    values = np.where(unpack_bits(x, channels), -1, 1).astype(np.int8)  # [N, H, W, C]
    top, left, bottom, right = pads
    lowest = np.iinfo(np.int8).min  # stands for -inf: never the max of a window with real input
    xp = np.pad(values, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=lowest)
    (kh_size, kw_size), (sh, sw), (dh, dw) = kernel_shape, strides, dilations
    out_h = (xp.shape[1] - ((kh_size - 1) * dh + 1)) // sh + 1
    out_w = (xp.shape[2] - ((kw_size - 1) * dw + 1)) // sw + 1
    best = np.full((values.shape[0], out_h, out_w, channels), lowest, dtype=np.int8)
    for kh in range(kh_size):
        for kw in range(kw_size):
            window = xp[:, kh * dh: kh * dh + sh * (out_h - 1) + 1: sh, kw * dw: kw * dw + sw * (out_w - 1) + 1: sw]
            best = np.maximum(best, window)
    return pack_bits(best < 0)

