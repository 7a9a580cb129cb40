"""Telling binary weights apart: a layer is binary when every weight of an output channel is +s or -s."""

from __future__ import annotations

import numpy as np

# Weights folded by exporters (e.g. sign(W) * gamma / sqrt(var + eps)) repeat the same float operation for
# each element, so they are equal to the last bit; 1e-5 leaves room for a few ulps (PyTorch's dynamo exporter
# folds to within 1 ulp) and nothing more: a layer is only converted when the conversion is exact.
RELATIVE_TOLERANCE = 1e-5


def per_channel_magnitude(weights: np.ndarray, channel_axis: int) -> tuple[np.ndarray | None, str]:
    """(s, ""): s[o] = the magnitude shared by all weights of output channel o; or (None, why not)."""
    magnitudes = np.abs(np.moveaxis(np.asarray(weights, np.float64), channel_axis, 0))
    flat = magnitudes.reshape(magnitudes.shape[0], -1)
    s = flat.max(axis=1)
    safe = np.where(s > 0, s, 1.0)
    deviation = float(np.max(np.abs(flat - s[:, None]) / safe[:, None])) if flat.size else 0.0
    if deviation <= RELATIVE_TOLERANCE:
        return s.astype(np.float32), ""
    zeros = int(np.sum((flat == 0) & (s[:, None] > 0)))
    if zeros:  # PyTorch's sign(0) = 0: a weight that was exactly 0 stays 0, which no binary layer has
        return None, f"{zeros} weight(s) are exactly 0 beside +-s (sign(0) = 0): a binary layer has only +-s"
    return None, f"weights are not +-s per output channel (relative deviation {deviation:.2g})"
