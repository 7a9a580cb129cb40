"""Checking a converted model against its source, and explaining a disagreement.

Outputs agree when max |converted - source| <= 1e-3 * max |source| and every argmax matches. When they do not,
the float ONNX (the frontend's output, which computes what the source computes) and the converted model are run
side by side on every tensor they share, which finds the first layer that diverges, and every binarizer is
checked for sign flips against the source's own values where the source can give them. Binarizers are examined
in graph order: at the first one whose signs differ, every flip must be a *tie*, a value the source computes
within float32 rounding of 0 (within the float difference measured on that very tensor, at least 1e-5 of its
largest value): there the source's own sign is rounding noise that no exact converter can reproduce, and
everything after follows from it. Ties are reported, never hidden by a looser tolerance; any other flip is a
disagreement. Where the source cannot give its own values (PyTorch) and no binarizer flips against the float
ONNX, the converted model is compared with the float ONNX itself: if they agree on every input and the float
ONNX differs from the source on a minority of inputs, those are ties that the source's framework and
onnxruntime round apart, reported as such.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import onnx

from bnn2onnx.ops import schema
from bnn2onnx.ops.reference import bit_unpack
from bnn2onnx.passes.recognise_binarizers import ZERO_TO_PLUS_ONE
from bnn2onnx.runtime import inference_session, run_batched

if TYPE_CHECKING:
    from bnn2onnx.passes import PipelineReport

OUTPUT_TOLERANCE = 1e-3
TIE_TOLERANCE = 1e-5


@dataclass
class Divergence:
    tensor: str
    max_abs_diff: float
    scale: float


@dataclass
class FirstFlip:
    """The first binarizer (in graph order) whose signs differ between source and converted model."""
    tensor: str
    ties: int  # flips where the source value is within its own rounding noise of 0
    others: int  # flips of clearly non-zero values: a real disagreement


@dataclass
class Verification:
    max_abs_diff: float
    scale: float
    argmax_agreement: float
    samples: int
    first_divergence: Divergence | None = None
    first_flip: FirstFlip | None = None
    later_flips: int = 0  # sign flips after the first flipping binarizer (its consequences)
    hidden_binarizers: int = 0  # binarizers whose decisions the converted model does not expose
    sign_zeros: int = 0  # exact zeros reaching PyTorch-style Sign: 0 in the source, +1 in the binary layers
    # Inputs on which the source and its own float ONNX disagree while the converted model agrees with that float
    # ONNX on every input (None: it does not, or this was not examined)
    export_differences: int | None = None

    @property
    def outputs_agree(self) -> bool:
        return self.max_abs_diff <= OUTPUT_TOLERANCE * max(self.scale, 1e-12) and self.argmax_agreement == 1.0

    @property
    def explained_by_export_ties(self) -> bool:
        """The converted model computes what the float ONNX computes, and the float ONNX differs from the source
        on a minority of inputs: sign ties that the source's framework and onnxruntime round apart (a broken
        export would differ on most inputs)."""
        return (not self.outputs_agree and self.first_flip is None and self.hidden_binarizers == 0
                and bool(self.export_differences) and 2 * self.export_differences <= self.samples)

    @property
    def explained_by_ties(self) -> bool:
        return not self.outputs_agree and self.hidden_binarizers == 0 and (
            (self.first_flip is not None and self.first_flip.others == 0) or self.explained_by_export_ties)

    @property
    def passed(self) -> bool:
        return self.outputs_agree or self.explained_by_ties

    def summary(self) -> str:
        head = (f"max |diff| {self.max_abs_diff:.3g} (of max |output| {self.scale:.3g}), argmax agreement "
                f"{self.argmax_agreement:.1%} on {self.samples} inputs")
        if self.sign_zeros:
            head += (f"; {self.sign_zeros} exact zero(s) reached a PyTorch-style sign, which gives 0 where the "
                     "binary layers use +1")
        if self.outputs_agree:
            return "agree: " + head
        divergence = f"; first diverging tensor {self.first_divergence.tensor!r}" if self.first_divergence else ""
        flip = self.first_flip
        if self.explained_by_export_ties:
            return (f"differ only where the source and its own float ONNX disagree ({self.export_differences} of "
                    f"{self.samples} inputs: sign ties that the two frameworks round apart); the converted model "
                    f"agrees with the float ONNX on every input: {head}")
        if self.explained_by_ties:
            return (f"differ only through sign ties: {flip.ties} value(s) of {flip.tensor!r} that the source computes "
                    f"within float32 rounding of 0 binarize differently ({self.later_flips} later sign(s) follow "
                    f"from them): {head}{divergence}")
        why = f"; first sign flips at {flip.tensor!r}: {flip.others} clearly non-zero, {flip.ties} ties" if flip \
            else "; no binarizer flips a sign"
        hidden = f"; {self.hidden_binarizers} binarizer(s) not observable" if self.hidden_binarizers else ""
        return f"DISAGREE: {head}{divergence}{why}{hidden}"


def differing_inputs(expected: np.ndarray, actual: np.ndarray, tolerance: float) -> int:
    """How many inputs (first axis) differ by more than tolerance x max |expected|."""
    scale = max(float(np.max(np.abs(expected))) if expected.size else 0.0, 1e-12)
    per_input = np.abs(actual.astype(np.float64) - expected).reshape(len(expected), -1).max(axis=1, initial=0.0)
    return int(np.sum(per_input > tolerance * scale))


def compare_outputs(source: np.ndarray, converted: np.ndarray) -> tuple[float, float, float]:
    """(max |diff|, max |source|, argmax agreement over the batch)."""
    diff = float(np.max(np.abs(converted.astype(np.float64) - source))) if source.size else 0.0
    scale = float(np.max(np.abs(source))) if source.size else 0.0
    flat_s, flat_c = source.reshape(len(source), -1), converted.reshape(len(converted), -1)
    agreement = float(np.mean(flat_s.argmax(1) == flat_c.argmax(1))) if source.size else 1.0
    return diff, scale, agreement


def binarized_reference(float_model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """The float model with its binarizers in canonical form, BitUnpack(BitPack(x)), moved past transposes as
    the converter moves them: it computes exactly what the float model computes (but at exact zeros reaching a
    PyTorch-style sign, whose inputs are returned too), and its packed tensors have the names the converted model
    gives them, so both can be compared binarizer by binarizer."""
    from bnn2onnx.passes import CANONICALISE, optimize, recognise_binarizers, sink_layout_ops

    reference, report = optimize(float_model, (CANONICALISE, (recognise_binarizers.run, sink_layout_ops.run)))
    return reference, zero_sign_tensors(report)


def zero_sign_tensors(report: PipelineReport) -> list[str]:
    """The tensors a pipeline binarized through a sign that maps 0 to 0 (the source's values there are 0)."""
    return [tensor for r in report.results for tensor, kind in r.deviations if kind == ZERO_TO_PLUS_ONE]


def _run_exposing(model: onnx.ModelProto, names: list[str], feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    known = {o.name for o in exposed.graph.output}
    for name in names:
        if name not in known:
            exposed.graph.output.append(onnx.ValueInfoProto(name=name))
    session = inference_session(exposed)
    outputs = [o.name for o in session.get_outputs()]
    return dict(zip(outputs, run_batched(session, feeds)))


SourceValues = Callable[[dict[str, np.ndarray], list[str]], dict[str, np.ndarray]]


def verify(source_outputs: np.ndarray, float_model: onnx.ModelProto, converted: onnx.ModelProto,
           feeds: dict[str, np.ndarray], source_values: SourceValues | None = None,
           zero_sign_inputs: list[str] | None = None) -> Verification:
    """Compares the converted model's first output with the source's, and explains a disagreement.

    `source_values(feeds, names)` returns the source model's own values of those float-ONNX tensors it can
    identify (ONNX layout); binarizer inputs are judged against them, so ties in the source itself are seen
    even where the float ONNX rounded the other way. Tensors it cannot identify are judged against the
    float ONNX. `zero_sign_inputs`: the float-ONNX inputs of signs that map 0 to 0 (PyTorch's), found here when
    not given; their exact zeros, where the binary layers differ by definition, are counted."""
    converted_session = inference_session(converted)
    output = run_batched(converted_session, feeds)[0]
    result = Verification(*compare_outputs(source_outputs, output), samples=len(source_outputs))
    reference = None
    if zero_sign_inputs is None:
        reference, zero_sign_inputs = binarized_reference(float_model)
    produced = {o for node in float_model.graph.node for o in node.output} | {i.name for i in float_model.graph.input}
    zero_sign_inputs = [name for name in zero_sign_inputs or [] if name in produced]
    if zero_sign_inputs:
        values = _run_exposing(float_model, zero_sign_inputs, feeds)
        result.sign_zeros = sum(int(np.sum(values[name] == 0)) for name in zero_sign_inputs)
    if result.outputs_agree:
        return result
    if reference is None:
        reference, _ = binarized_reference(float_model)
    order = [o for node in reference.graph.node for o in node.output]
    converted_names = {o for node in converted.graph.node for o in node.output} | \
        {i.name for i in converted.graph.input}
    binarizers = [(node.input[0], node.output[0]) for node in reference.graph.node if node.op_type == schema.BIT_PACK]
    wanted = [name for name in order if name in converted_names]
    wanted += [x for x, _ in binarizers if x not in converted_names]
    # Graph inputs are values too: a binarizer may read one directly.
    reference_values = {**feeds, **_run_exposing(reference, wanted, feeds)}
    converted_values = {**feeds, **_run_exposing(converted, [n for n in wanted if n in converted_names], feeds)}
    for name in order:
        a, b = reference_values.get(name), converted_values.get(name)
        if a is None or b is None or a.shape != b.shape or a.dtype != b.dtype or a.dtype != np.float32:
            continue
        diff, scale = float(np.max(np.abs(a - b))) if a.size else 0.0, float(np.max(np.abs(a))) if a.size else 0.0
        if diff > OUTPUT_TOLERANCE * max(scale, 1e-12):
            result.first_divergence = Divergence(name, diff, scale)
            break
    from_source = source_values(feeds, [x for x, _ in binarizers]) if source_values else {}
    for x_name, packed_name in binarizers:
        x = reference_values[x_name]
        if x_name in from_source and from_source[x_name].shape == x.shape:
            x = from_source[x_name]
        if packed_name in converted_values:  # the converted layer packs its output: compare bits
            channels = x.shape[1]
            flips = bit_unpack(reference_values[packed_name], channels=channels) != \
                bit_unpack(converted_values[packed_name], channels=channels)
            noise = 0.0
        elif x_name in converted_values:  # the converted model binarizes this float tensor itself
            flips = (x < 0) != (converted_values[x_name] < 0)
            noise = float(np.max(np.abs(x - converted_values[x_name]))) if x.size else 0.0
        else:
            result.hidden_binarizers += 1
            continue
        count = int(np.sum(flips))
        if not count:
            continue
        if result.first_flip is not None:
            result.later_flips += count
            continue
        # Within rounding of 0: below the float noise measured on this tensor (twice, for both sides'
        # rounding), and never below 1e-5 of its largest value.
        near_zero = np.abs(x) <= max(2 * noise, TIE_TOLERANCE * (float(np.max(np.abs(x))) if x.size else 0.0))
        ties = int(np.sum(flips & near_zero))
        result.first_flip = FirstFlip(x_name, ties, count - ties)
    if result.first_flip is None and not result.hidden_binarizers:
        exported = run_batched(inference_session(float_model), feeds)[0]
        diff, scale, agreement = compare_outputs(exported, output)
        if diff <= OUTPUT_TOLERANCE * max(scale, 1e-12) and agreement == 1.0:
            result.export_differences = differing_inputs(source_outputs, exported, OUTPUT_TOLERANCE)
    return result
