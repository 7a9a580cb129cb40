"""Checking a converted model against its source, and explaining a disagreement.

Outputs agree when max |converted - source| <= 1e-3 * max |source| and every argmax matches. When they do not,
the float ONNX (the frontend's output, which computes what the source computes) and the converted model are run
side by side on every tensor they share, which finds the first layer that diverges, and every binarizer is
checked for sign flips against the source's own values where the source can give them (else against the float
ONNX's). Each input on which the outputs differ is proven on its own: at the first binarizer (in graph order)
whose signs differ on that input, every flip must be a *tie*, a value the source computes within float32
rounding of 0 (|x| <= 1e-5 of the tensor's largest value, about 80 float32 steps of it; never widened by the
difference measured between the two models, which a wrong conversion makes large): there the source's own sign
is rounding noise that no exact converter can reproduce, and everything after on that input follows from it.
Any other flip, or a differing input with no flip, is a disagreement.

When no binarizer flips and the converted model computes what the float ONNX computes on every input, the
source may still differ from its own float ONNX (the conversion changed nothing there). Each such input must be
proven a tie: by the source's own values (the first binarizer whose signs differ between the source and the
float ONNX on that input flips only ties), or, where the source cannot give its values (PyTorch), by the source
itself: its output on that input jumps when the input moves by float32 rounding (a few steps), which happens
only when a binarizer's input sits on its decision boundary. An input that is not proven fails verification.
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
from bnn2onnx.runtime import exact_session_options, inference_session, run_batched

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
    """The first binarizer (in graph order) whose signs differ between source and converted model, on any input."""
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
    # ONNX on every input (None: it does not, or this was not examined), and how many of them are proven ties
    export_differences: int | None = None
    export_ties: int = 0
    # Inputs whose outputs differ, and how many of them are proven: their own first flipped binarizer flips only ties
    differing_inputs: int = 0
    tie_inputs: int = 0

    @property
    def outputs_agree(self) -> bool:
        return self.max_abs_diff <= OUTPUT_TOLERANCE * max(self.scale, 1e-12) and self.argmax_agreement == 1.0

    @property
    def explained_by_export_ties(self) -> bool:
        """The converted model computes what the float ONNX computes, and every input on which the float ONNX
        differs from the source is a proven tie (module docstring)."""
        return (not self.outputs_agree and self.first_flip is None and self.hidden_binarizers == 0
                and bool(self.export_differences) and self.export_ties == self.export_differences)

    @property
    def explained_by_ties(self) -> bool:
        return not self.outputs_agree and self.hidden_binarizers == 0 and (
            (self.first_flip is not None and self.tie_inputs == self.differing_inputs) or
            self.explained_by_export_ties)

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
                    f"{self.samples} inputs, each a proven sign tie that the two frameworks round apart); the "
                    f"converted model agrees with the float ONNX on every input: {head}")
        if self.export_differences:
            return (f"DISAGREE: the converter changed nothing (the converted model agrees with the float ONNX on "
                    f"every input), but the source differs from its own float ONNX on {self.export_differences} of "
                    f"{self.samples} inputs, {self.export_ties} of them proven sign ties; the others are an export "
                    f"problem, not a tie: {head}")
        if self.explained_by_ties:
            return (f"differ only through sign ties: on each of the {self.differing_inputs} differing input(s) the "
                    f"first binarizer whose signs flip flips only values the source computes within float32 rounding "
                    f"of 0 (first at {flip.tensor!r}; {self.later_flips} later sign(s) follow): {head}{divergence}")
        why = (f"; first sign flips at {flip.tensor!r}: {flip.others} clearly non-zero, {flip.ties} ties; "
               f"{self.tie_inputs} of {self.differing_inputs} differing inputs proven ties") if flip \
            else "; no binarizer flips a sign"
        hidden = f"; {self.hidden_binarizers} binarizer(s) not observable" if self.hidden_binarizers else ""
        return f"DISAGREE: {head}{divergence}{why}{hidden}"


def differing_input_indices(expected: np.ndarray, actual: np.ndarray, tolerance: float) -> list[int]:
    """The inputs (first axis) that differ by more than tolerance x max |expected|, or whose argmax differs."""
    scale = max(float(np.max(np.abs(expected))) if expected.size else 0.0, 1e-12)
    flat_e, flat_a = expected.reshape(len(expected), -1), actual.reshape(len(actual), -1)
    per_input = np.abs(flat_a.astype(np.float64) - flat_e).max(axis=1, initial=0.0)
    differ = (per_input > tolerance * scale) | (flat_e.argmax(1) != flat_a.argmax(1))
    return [int(i) for i in np.flatnonzero(differ)]


def compare_outputs(source: np.ndarray, converted: np.ndarray) -> tuple[float, float, float]:
    """(max |diff|, max |source|, argmax agreement over the batch)."""
    diff = float(np.max(np.abs(converted.astype(np.float64) - source))) if source.size else 0.0
    scale = float(np.max(np.abs(source))) if source.size else 0.0
    flat_s, flat_c = source.reshape(len(source), -1), converted.reshape(len(converted), -1)
    agreement = float(np.mean(flat_s.argmax(1) == flat_c.argmax(1))) if source.size else 1.0
    return diff, scale, agreement


def binarized_reference(float_model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """The float model with its binarizers in canonical form, BitUnpack(BitPack(x)), placed as the converter places
    them (past transposes, reshapes and max-pools): it computes exactly what the float model computes (but at exact
    zeros reaching a PyTorch-style sign, whose inputs are returned too), and its packed tensors have the names the
    converted model gives them, so both can be compared binarizer by binarizer."""
    from bnn2onnx.passes import CANONICALISE, PLACE_BINARIZERS, optimize

    reference, report = optimize(float_model, (CANONICALISE, PLACE_BINARIZERS))
    return reference, zero_sign_tensors(report)


def zero_sign_tensors(report: PipelineReport) -> list[str]:
    """The tensors a pipeline binarized through a sign that maps 0 to 0 (the source's values there are 0)."""
    return [tensor for r in report.results for tensor, kind in r.deviations if kind == ZERO_TO_PLUS_ONE]


def _run_exposing(model: onnx.ModelProto, names: list[str], feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's outputs and the tensors `names`, computed by exactly the model's ops: onnxruntime's graph
    optimizations off. They fuse and re-lay-out float ops (rounding differently) depending on which tensors are
    outputs, so an optimized run with some tensors exposed computes other values than one without: a sign tie
    could flip in one and not the other, and the output compared would not be the one explained."""
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    known = {o.name for o in exposed.graph.output}
    for name in names:
        if name not in known:
            exposed.graph.output.append(onnx.ValueInfoProto(name=name))
    session = inference_session(exposed, options=exact_session_options())
    outputs = [o.name for o in session.get_outputs()]
    return dict(zip(outputs, run_batched(session, feeds)))


SourceValues = Callable[[dict[str, np.ndarray], list[str]], dict[str, np.ndarray]]


def verify(source_outputs: np.ndarray, float_model: onnx.ModelProto, converted: onnx.ModelProto,
           feeds: dict[str, np.ndarray], source_values: SourceValues | None = None,
           zero_sign_inputs: list[str] | None = None,
           source_predict: Callable[[dict[str, np.ndarray]], np.ndarray] | None = None) -> Verification:
    """Compares the converted model's first output with the source's, and explains a disagreement.

    `source_values(feeds, names)` returns the source model's own values of those float-ONNX tensors it can
    identify (ONNX layout); binarizer inputs are judged against them, so ties in the source itself are seen
    even where the float ONNX rounded the other way. Tensors it cannot identify are judged against the
    float ONNX. `zero_sign_inputs`: the float-ONNX inputs of signs that map 0 to 0 (PyTorch's), found here when
    not given; their exact zeros, where the binary layers differ by definition, are counted. `source_predict`
    (the source's first output for feeds) proves ties on inputs where the source differs from its float ONNX and
    cannot give its own values."""
    output = _run_exposing(converted, [], feeds)[converted.graph.output[0].name]
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
    observed = []  # (flips, ties) per observable binarizer, in graph order
    for x_name, packed_name in binarizers:
        x = reference_values[x_name]
        if x_name in from_source and from_source[x_name].shape == x.shape:
            x = from_source[x_name]
        if packed_name in converted_values:  # the converted layer packs its output: compare its bits' signs
            flips, ties = sign_flips(x, bit_unpack(converted_values[packed_name], channels=x.shape[1]))
        elif x_name in converted_values:  # the converted model binarizes this float tensor itself
            flips, ties = sign_flips(x, converted_values[x_name])
        else:
            result.hidden_binarizers += 1
            continue
        observed.append((flips, ties))
        count = int(np.sum(flips))
        if not count:
            continue
        if result.first_flip is not None:
            result.later_flips += count
            continue
        result.first_flip = FirstFlip(x_name, int(np.sum(ties)), count - int(np.sum(ties)))
    differing = differing_input_indices(source_outputs, output, OUTPUT_TOLERANCE)
    result.differing_inputs = len(differing)
    result.tie_inputs = sum(first_flips_are_ties(observed, i) for i in differing)
    if result.first_flip is None and not result.hidden_binarizers:
        exported = _run_exposing(float_model, [], feeds)[float_model.graph.output[0].name]
        diff, scale, agreement = compare_outputs(exported, output)
        if diff <= OUTPUT_TOLERANCE * max(scale, 1e-12) and agreement == 1.0:
            differing = differing_input_indices(source_outputs, exported, OUTPUT_TOLERANCE)
            result.export_differences = len(differing)
            # The source's own signs against the float ONNX's, at every binarizer whose values the source gives
            exported_flips = [sign_flips(from_source[x], reference_values[x]) for x, _ in binarizers
                              if x in from_source and from_source[x].shape == reference_values[x].shape]
            result.export_ties = sum(
                first_flips_are_ties(exported_flips, i) or
                (source_predict is not None and unstable_source(source_predict, feeds, i))
                for i in differing)
    return result


def sign_flips(source: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the signs of `other` differ from the source's values, and which of those are ties (near_zero)."""
    flips = (source < 0) != (other < 0)
    return flips, flips & near_zero(source)


def first_flips_are_ties(observed: list[tuple[np.ndarray, np.ndarray]], i: int) -> bool:
    """Whether, on input i, the first binarizer (of (flips, ties) masks in graph order) whose signs flip flips
    only ties; False when none flips."""
    for flips, ties in observed:
        if np.any(flips[i]):
            return bool(np.array_equal(flips[i], ties[i]))
    return False


def near_zero(x: np.ndarray) -> np.ndarray:
    """Values within float32 rounding of 0: at most TIE_TOLERANCE of the tensor's largest value."""
    return np.abs(x) <= TIE_TOLERANCE * (float(np.max(np.abs(x))) if x.size else 0.0)


def values_on_sign_boundaries(float_model: onnx.ModelProto, feeds: dict[str, np.ndarray], inputs: list[int]) -> int:
    """How many values reaching a PyTorch-style sign (0 -> 0) in the float model lie within float32 rounding of 0,
    but not at 0 (a ReLU's exact zeros are the same in every runtime), on the given inputs: where two runtimes may
    round a binarizer's input to different signs."""
    _, zero_sign_inputs = binarized_reference(float_model)
    values = _run_exposing(float_model, zero_sign_inputs, feeds)
    return sum(int(np.sum((near_zero(values[name]) & (values[name] != 0))[inputs]))
               for name in zero_sign_inputs if name in values)


PERTURBATIONS = 8
PERTURBATION = 1e-6  # relative: about 8 float32 steps


def unstable_source(predict: Callable[[dict[str, np.ndarray]], np.ndarray], feeds: dict[str, np.ndarray],
                    i: int) -> bool:
    """Whether the source's output on input i moves beyond OUTPUT_TOLERANCE when the input moves by float32
    rounding (PERTURBATION, a few steps): only a binarizer input on its decision boundary does that, so the
    source's own answer there is rounding noise."""
    rng = np.random.default_rng(i)
    output = predict({k: v[i:i + 1] for k, v in feeds.items()})[0]
    scale = max(float(np.max(np.abs(output))), 1e-12)
    for _ in range(PERTURBATIONS):
        moved = {k: (v[i:i + 1] * (1 + PERTURBATION * rng.standard_normal(v[i:i + 1].shape))).astype(v.dtype)
                 for k, v in feeds.items()}
        if np.max(np.abs(predict(moved)[0] - output)) > OUTPUT_TOLERANCE * scale:
            return True
    return False
