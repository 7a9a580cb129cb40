"""Keeps tf2onnx's peak memory near the model's size (tf2onnx 1.17).

Measured on larq_zoo BinaryAlexNet (247 MB of weights): plain `tf2onnx.convert.from_keras` peaks at 14-17 GB.
Two causes, both proportional to the weights:
- TF's grappler, run on the frozen graph, peaks at ~6.9 GB. `large_model=True` makes tf2onnx freeze variables
  itself and skip grappler; the kernel quantizers grappler would fold are already baked (see keras.py).
- After every one of its ~36 optimizer runs, tf2onnx rebuilds each node's protobuf (`Node.update_proto`),
  copying every constant tensor again; protobuf's arena keeps the replaced copies until the whole graph is
  freed, so memory grows by one model size per optimizer run (~250 MB x 36). A constant whose value attribute
  is the same object as at the last sync does not need copying again; `constants_copied_once` skips exactly that.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import tf2onnx
from tf2onnx.graph import Node

if not tf2onnx.__version__.startswith("1.17."):
    raise ImportError(f"bnn2onnx's tf2onnx memory fix is written for tf2onnx 1.17, found {tf2onnx.__version__}")

_SYNCED = "_bnn2onnx_synced_value"


@contextmanager
def constants_copied_once() -> Iterator[None]:
    original = Node.update_proto

    def update_proto(self: Node, external_tensor_storage=None) -> None:
        value = self._attr.get("value") if self.is_const() else None
        if value is not None and external_tensor_storage is None and getattr(self, _SYNCED, None) is value:
            # Same value attribute as already in the proto: only the input/output lists can have changed.
            del self._op.input[:]
            self._op.input.extend(self.input)
            del self._op.output[:]
            self._op.output.extend(self.output)
            return
        original(self, external_tensor_storage)
        if value is not None and external_tensor_storage is None:
            setattr(self, _SYNCED, value)

    Node.update_proto = update_proto
    try:
        yield
    finally:
        Node.update_proto = original
