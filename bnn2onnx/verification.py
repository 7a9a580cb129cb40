"""Checking a converted model against its source, and explaining a disagreement.

Outputs agree when max |converted - source| <= 1e-3 * max |source| and every argmax matches. When they do not,
the float ONNX (the frontend's output, which computes what the source computes) and the converted model are run
side by side on every tensor they share, which finds the first layer that diverges; and every binarizer input
they share is checked for sign flips. A flip where the float value is within rounding of 0 (|v| <= 1e-5 * max|v|
of that tensor) is a *tie*: the source's own sign there is float32 noise, and no exact converter can reproduce
it. Ties are reported, never hidden by a looser tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import onnxruntime as ort

from bnn2onnx.ops import schema
from bnn2onnx.runtime import inference_session

OUTPUT_TOLERANCE = 1e-3
TIE_TOLERANCE = 1e-5


@dataclass
class Divergence:
    tensor: str
    max_abs_diff: float
    scale: float


@dataclass
class Verification:
    max_abs_diff: float
    scale: float
    argmax_agreement: float
    samples: int
    first_divergence: Divergence | None = None
    tie_flips: int = 0
    real_flips: dict[str, int] = field(default_factory=dict)  # binarizer input -> sign flips away from 0
    # Values within rounding of 0 at binarizers the converted model does not expose as float (their layer was
    # fused into a packed-output layer): flips there cannot be observed, only their possibility counted.
    hidden_ties: int = 0

    @property
    def outputs_agree(self) -> bool:
        return self.max_abs_diff <= OUTPUT_TOLERANCE * max(self.scale, 1e-12) and self.argmax_agreement == 1.0

    @property
    def explained_by_ties(self) -> bool:
        return not self.outputs_agree and (self.tie_flips > 0 or self.hidden_ties > 0) and not self.real_flips

    @property
    def passed(self) -> bool:
        return self.outputs_agree or self.explained_by_ties

    def summary(self) -> str:
        head = (f"max |diff| {self.max_abs_diff:.3g} (of max |output| {self.scale:.3g}), argmax agreement "
                f"{self.argmax_agreement:.1%} on {self.samples} inputs")
        if self.outputs_agree:
            return "agree: " + head
        detail = f"; first diverging tensor {self.first_divergence.tensor!r}" if self.first_divergence else ""
        if self.explained_by_ties:
            ties = (f"{self.tie_flips} sign flip(s) at source pre-activations within float32 rounding of 0"
                    if self.tie_flips else
                    f"{self.hidden_ties} source pre-activation(s) within float32 rounding of 0 inside fused layers")
            return f"differ only through sign ties ({ties}; no other sign differs): {head}{detail}"
        flips = ", ".join(f"{name!r}: {count}" for name, count in self.real_flips.items())
        return f"DISAGREE: {head}{detail}" + (f"; sign flips away from 0 at {flips}" if flips else "")


def compare_outputs(source: np.ndarray, converted: np.ndarray) -> tuple[float, float, float]:
    """(max |diff|, max |source|, argmax agreement over the batch)."""
    diff = float(np.max(np.abs(converted.astype(np.float64) - source))) if source.size else 0.0
    scale = float(np.max(np.abs(source))) if source.size else 0.0
    flat_s, flat_c = source.reshape(len(source), -1), converted.reshape(len(converted), -1)
    agreement = float(np.mean(flat_s.argmax(1) == flat_c.argmax(1))) if source.size else 1.0
    return diff, scale, agreement


def binarizer_inputs(float_model: onnx.ModelProto) -> set[str]:
    """Names of the tensors the float model binarizes (found by the same recogniser the converter uses)."""
    from bnn2onnx.passes import recognise_binarizers

    graph = gs.import_onnx(onnx.shape_inference.infer_shapes(float_model))
    recognise_binarizers.run(graph)
    return {node.inputs[0].name for node in graph.nodes if node.op == schema.BIT_PACK}


def _run_exposing(model: onnx.ModelProto, names: list[str], feeds: dict[str, np.ndarray],
                  custom_ops: bool) -> dict[str, np.ndarray]:
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    known = {o.name for o in exposed.graph.output}
    for name in names:
        if name not in known:
            exposed.graph.output.append(onnx.ValueInfoProto(name=name))
    if custom_ops:
        session = inference_session(exposed)
    else:
        session = ort.InferenceSession(exposed.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    return dict(zip(outputs, session.run(None, feeds)))


def _near_zero(values: np.ndarray) -> np.ndarray:
    return np.abs(values) <= TIE_TOLERANCE * max(float(np.max(np.abs(values))) if values.size else 0.0, 1e-30)


def verify(source_outputs: np.ndarray, float_model: onnx.ModelProto, converted: onnx.ModelProto,
           feeds: dict[str, np.ndarray]) -> Verification:
    """Compares the converted model's first output with the source's, and explains a disagreement."""
    converted_session = inference_session(converted)
    output = converted_session.run(None, feeds)[0]
    result = Verification(*compare_outputs(source_outputs, output), samples=len(source_outputs))
    if result.outputs_agree:
        return result
    float_order = [o for node in float_model.graph.node for o in node.output]
    converted_names = {o for node in converted.graph.node for o in node.output}
    shared = [name for name in float_order if name in converted_names]
    float_values = _run_exposing(float_model, shared, feeds, custom_ops=False)
    converted_values = _run_exposing(converted, shared, feeds, custom_ops=True)
    for name in shared:
        a, b = float_values.get(name), converted_values.get(name)
        if a is None or b is None or a.shape != b.shape or a.dtype != b.dtype:
            continue
        diff, scale = float(np.max(np.abs(a - b))) if a.size else 0.0, float(np.max(np.abs(a))) if a.size else 0.0
        if result.first_divergence is None and diff > OUTPUT_TOLERANCE * max(scale, 1e-12):
            result.first_divergence = Divergence(name, diff, scale)
    binarized = binarizer_inputs(float_model)
    hidden = sorted(binarized - set(shared))
    for name, a in _run_exposing(float_model, hidden, feeds, custom_ops=False).items():
        if name in hidden:
            result.hidden_ties += int(np.sum(_near_zero(a)))
    for name in sorted(binarized & set(shared)):
        a, b = float_values.get(name), converted_values.get(name)
        if a is None or b is None or a.shape != b.shape:
            continue
        flips = (a < 0) != (b < 0)
        near_zero = _near_zero(a)
        result.tie_flips += int(np.sum(flips & near_zero))
        real = int(np.sum(flips & ~near_zero))
        if real:
            result.real_flips[name] = real
    return result
