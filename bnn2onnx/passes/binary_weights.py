"""Telling binary weights apart: a layer is binary when every weight of an output channel is +s or -s."""

from __future__ import annotations

import numpy as np

# Weights folded by exporters (e.g. sign(W) * gamma / sqrt(var + eps)) repeat the same float operation for
# each element, so they are equal to the last bit; 1e-5 leaves room for a few ulps (PyTorch's dynamo exporter
# folds to within 1 ulp) and nothing more: a layer is only converted when the conversion is exact.
RELATIVE_TOLERANCE = 1e-5


def per_channel_magnitude(weights: np.ndarray, channel_axis: int) -> tuple[np.ndarray | None, float]:
    """(s, deviation): s[o] = the magnitude shared by all weights of output channel o, or None with the largest
    relative deviation found when the weights are not +-s per channel."""
    magnitudes = np.abs(np.moveaxis(np.asarray(weights, np.float64), channel_axis, 0))
    flat = magnitudes.reshape(magnitudes.shape[0], -1)
    s = flat.max(axis=1)
    safe = np.where(s > 0, s, 1.0)
    deviation = float(np.max(np.abs(flat - s[:, None]) / safe[:, None])) if flat.size else 0.0
    if deviation > RELATIVE_TOLERANCE:
        return None, deviation
    return s.astype(np.float32), deviation
