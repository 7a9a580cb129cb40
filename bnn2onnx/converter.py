"""The converter: source model -> canonical float ONNX (frontend) -> passes -> checked, verified ONNX.

`convert()` returns the model; `convert_with_report()` also says what was converted, what stayed float and why,
the sizes, and how the result compares with the source (the CLI prints all of it).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from bnn2onnx.errors import ConversionError
from bnn2onnx.frontends import onnx_float, python_factory, pytorch
from bnn2onnx.ops import schema
from bnn2onnx.passes import PipelineReport, optimize
from bnn2onnx.passes.evaluated_binarizers import ELEMENTWISE, LAYOUT_OPS
from bnn2onnx.verification import SourceValues, Verification, verify, zero_sign_tensors

BINARY_OPS = (schema.BINARY_CONV2D, schema.BINARY_DENSE)
SIGN_LIKE_OPS = frozenset({"Sign", "Where", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "Equal"})
FLOAT_LAYER_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
Progress = Callable[[str], None]


class UnrecognisedBinarizerWarning(UserWarning):
    """A float layer reads sign-like ops that are not the binary sign (convert() warns; the CLI prints it)."""


@dataclass
class Layer:
    name: str
    op: str
    note: str = ""


@dataclass
class ConversionResult:
    model: onnx.ModelProto
    float_model: onnx.ModelProto
    pipeline: PipelineReport
    binary_layers: list[Layer] = field(default_factory=list)
    float_layers: list[Layer] = field(default_factory=list)
    verification: Verification | None = None
    # Float layers whose input sign-like ops compute (a binarizer not recognised as the binary sign), with why
    unrecognised_binarizers: list[str] = field(default_factory=list)

    @property
    def float_bytes(self) -> int:
        return self.float_model.ByteSize()

    @property
    def converted_bytes(self) -> int:
        return self.model.ByteSize()


@dataclass
class Source:
    """A loaded source model: its float ONNX, and how to compute its own outputs for verification."""
    float_model: onnx.ModelProto
    predict: Callable[[dict[str, np.ndarray]], np.ndarray]
    values: SourceValues | None = None  # the source's own intermediate values, by float-ONNX tensor name


def load_source(source: Any, progress: Progress, example_input: Any = None, exporter: str = "dynamo",
                trust_lambda: bool = False, factory_kwargs: dict[str, Any] | None = None) -> Source:
    """A float or QONNX .onnx file, a torch.nn.Module (with `example_input`) or saved torch.export program (.pt2),
    a Keras/Larq file or directory (`trust_lambda`: run the code of its Lambda layers), a tf.keras Model
    object, or a `module:function` / `file.py:function` that builds one of those models (with `factory_kwargs`)."""
    if python_factory.is_factory(source):
        progress(f"building the model with {source}")
        model, built_input = python_factory.build(source, factory_kwargs or {})
        return load_source(model, progress, built_input if built_input is not None else example_input, exporter)
    suffix = Path(source).suffix.lower() if isinstance(source, (str, Path)) else ""
    if suffix == ".onnx":
        progress("loading ONNX")
        float_model = onnx_float.load_float_onnx(source)
        predict = onnx_float.onnxruntime_predict(float_model)
        return Source(float_model, predict)
    if suffix == ".pt2" or pytorch.is_torch_model(source):
        if suffix == ".pt2":
            progress("loading torch.export program")
            source, example_input = pytorch.load_exported_program(source)
        elif example_input is None:
            raise ConversionError("a PyTorch module needs example_input: a tensor of its input shape")
        progress(f"exporting float ONNX (torch.onnx, {exporter} exporter) and checking it against the module")
        return Source(*pytorch.torch_to_float_onnx(source, example_input, exporter))

    from bnn2onnx.frontends import keras

    owned = isinstance(source, (str, Path))
    if owned:
        progress("loading Keras model")
        model = keras.load_keras_model(source, trust_lambda)
    elif isinstance(source, keras.tensorflow_for_larq().keras.Model):
        model = source
    else:
        raise ConversionError(f"unsupported source {type(source).__name__}: give a Keras or PyTorch model, a "
                              "model file (.h5, .keras, SavedModel directory, .pt2, .onnx), or a module:function "
                              "that builds a model")
    progress("exporting float ONNX (tf2onnx)")
    # Quantizing kernels in place leaves the model computing exactly what it computed before (the quantizer
    # is idempotent on its own output), so it still serves as the reference for verification.
    float_model = keras.keras_to_float_onnx(model, owned=owned)
    input_names = [i.name for i in float_model.graph.input]

    def predict(feeds: dict[str, np.ndarray]) -> np.ndarray:
        outputs = model([feeds[name] for name in input_names] if len(input_names) > 1 else feeds[input_names[0]],
                        training=False)
        first = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
        return np.asarray(first)

    return Source(float_model, predict, lambda feeds, names: keras.layer_values(model, input_names, feeds, names))


def random_inputs(model: onnx.ModelProto, samples: int, seed: int) -> dict[str, np.ndarray]:
    """Standard-normal inputs for every graph input; dynamic dims other than the batch are refused."""
    rng = np.random.default_rng(seed)
    initializers = {t.name for t in model.graph.initializer}
    feeds = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        if value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            raise ConversionError(f"input {value.name!r} is not float; random inputs are float only")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]
        if any(d is None for d in dims[1:]):
            raise ConversionError(f"input {value.name!r} has unknown dimensions {dims[1:]}; give --inputs FILE.npy")
        feeds[value.name] = rng.standard_normal([samples, *dims[1:]]).astype(np.float32)
    return feeds


def feeds_from_array(model: onnx.ModelProto, batch: np.ndarray) -> dict[str, np.ndarray]:
    inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(inputs) != 1:
        raise ConversionError(f"the model has {len(inputs)} inputs; a single .npy batch can only feed one")
    return {inputs[0]: np.asarray(batch, dtype=np.float32)}


def sign_like_ops_before(model: onnx.ModelProto, node: onnx.NodeProto) -> list[onnx.NodeProto]:
    """The sign-like ops (SIGN_LIKE_OPS) among the elementwise and layout ops that compute a layer's input, nearest
    first: a binarizer spelled in a way no pass recognised."""
    producers = {output: n for n in model.graph.node for output in n.output}
    found, pending, seen = [], [node.input[0]], set()
    while pending and len(seen) < 16:
        producer = producers.get(pending.pop(0))
        if producer is None or id(producer) in seen or producer.op_type not in ELEMENTWISE | LAYOUT_OPS:
            continue
        seen.add(id(producer))
        if producer.op_type in SIGN_LIKE_OPS:
            found.append(producer)
        pending.extend(name for name in producer.input if name)
    return found


def describe_layers(result: ConversionResult) -> None:
    refusals = {name: reason for r in result.pipeline.results for name, reason in r.refused}
    unpacked = {o for n in result.model.graph.node if n.op_type == schema.BIT_UNPACK for o in n.output}
    for node in result.model.graph.node:
        if node.op_type in BINARY_OPS:
            packed = any(a.name == "packed_output" and a.i == 1 for a in node.attribute)
            result.binary_layers.append(Layer(node.name, node.op_type, "packed output" if packed else "float output"))
        elif node.op_type in FLOAT_LAYER_OPS:
            note = refusals.get(node.name, "input is not binarized: a full-precision layer")
            if node.name not in refusals and node.input[0] in unpacked:
                note = f"input is binarized, but no binary op computes {node.op_type}, so the layer stays float"
            if node.name not in refusals and (sign_like := sign_like_ops_before(result.model, node)):
                # A sign a pass refused says why; any other did not compute the binary sign.
                note = next((refusals[n.name] for n in sign_like if n.name in refusals), None) or (
                    f"input comes from sign-like ops ({' <- '.join(n.op_type for n in sign_like)}) that do not "
                    "compute the binary sign (x < 0 -> -1, else +1), so the layer stays float")
                result.unrecognised_binarizers.append(f"{node.name}: {note}")
            result.float_layers.append(Layer(node.name, node.op_type, note))


def check_model(model: onnx.ModelProto) -> None:
    try:
        onnx.checker.check_model(model, full_check=False)
    except onnx.checker.ValidationError as error:
        raise ConversionError(f"converted model fails onnx.checker: {error}") from error


def convert_with_report(source: Any, example_input: Any = None, *, inputs: np.ndarray | None = None,
                        samples: int = 16, seed: int = 0, verify_result: bool = True, exporter: str = "dynamo",
                        trust_lambda: bool = False, factory_kwargs: dict[str, Any] | None = None,
                        progress: Progress = lambda stage: None) -> ConversionResult:
    """Like `convert`, returning the model with what was converted, what stayed float and why, and the
    verification."""
    loaded = load_source(source, progress, example_input, exporter, trust_lambda, factory_kwargs)
    progress("optimising (binary layers, packing, thresholds)")
    model, report = optimize(loaded.float_model)
    check_model(model)
    result = ConversionResult(model, loaded.float_model, report)
    describe_layers(result)
    if verify_result:
        progress("verifying against the source model")
        feeds = feeds_from_array(model, inputs) if inputs is not None else random_inputs(model, samples, seed)
        result.verification = verify(loaded.predict(feeds), loaded.float_model, model, feeds, loaded.values,
                                     zero_sign_tensors(report), loaded.predict)
    return result


def convert(source: Any, example_input: Any = None, *, inputs: np.ndarray | None = None, samples: int = 16,
            seed: int = 0, verify_result: bool = True, exporter: str = "dynamo",
            trust_lambda: bool = False, factory_kwargs: dict[str, Any] | None = None) -> onnx.ModelProto:
    """Converts a model to ONNX with bnn2onnx binary ops. `source`: a Keras/Larq model (object, or .h5/.keras/
    SavedModel path), a torch.nn.Module with `example_input` (a tensor, or tuple of tensors, of its input shape;
    exported by torch.onnx's `exporter`, "dynamo" or "legacy", with a free batch), a torch.export program (.pt2
    path), or a float or QONNX .onnx path. `trust_lambda=True` lets Keras run the Python code of Lambda layers
    stored in a model file (Keras refuses by default: only for files from a source you trust).

    With verification (default) the result is compared with the source on `inputs` (or `samples` random
    inputs); a disagreement that sign ties at 0 do not explain raises ConversionError.
    """
    result = convert_with_report(source, example_input, inputs=inputs, samples=samples, seed=seed,
                                 verify_result=verify_result, exporter=exporter, trust_lambda=trust_lambda,
                                 factory_kwargs=factory_kwargs)
    for message in result.unrecognised_binarizers:
        warnings.warn(f"layer {message}", UnrecognisedBinarizerWarning, stacklevel=2)
    if result.verification is not None and not result.verification.passed:
        raise ConversionError("converted model disagrees with the source: " + result.verification.summary())
    return result.model
