"""Keras/Larq frontend: load a .h5, .keras or SavedModel with larq's layers, and export a float ONNX via tf2onnx.

Larq only works with legacy Keras 2 (tf-keras): TF_USE_LEGACY_KERAS must be set before TensorFlow is first
imported, so every TensorFlow import in bnn2onnx goes through `tensorflow_for_larq()`.

Before export, every kernel quantizer is applied once and its result stored as the layer's kernel (the layer
then has no kernel quantizer). Keras computes exactly these values at inference, so the model is unchanged;
but tf2onnx no longer constant-folds a quantizer graph over each kernel, which is what made it peak at 14 GB on
BinaryAlexNet's large dense layers (each fold materialises several full copies of the kernel in TF's grappler).
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import re
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnx

from bnn2onnx.errors import ConversionError, first_line
from bnn2onnx.native_stderr import quiet_native_stderr

KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")
# tf2onnx 1.17 supports opsets up to 18.
ONNX_OPSET = 17


def tensorflow_for_larq() -> ModuleType:
    """TensorFlow with legacy Keras, plus larq's layers registered."""
    existing = os.environ.get("TF_USE_LEGACY_KERAS")
    if existing not in (None, "1", "true", "True"):
        raise ConversionError(f"TF_USE_LEGACY_KERAS={existing!r}: larq needs legacy Keras; unset it or set it to 1")
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    # Level 3 also hides TensorFlow's failed CUDA probe on machines without a GPU (an ERROR line); its real errors
    # reach Python as exceptions. The import itself prints oneDNN and CUDA notes before any setting applies.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with quiet_native_stderr():
            import h5py  # noqa: F401  (reads .h5 files)
            import larq  # noqa: F401  (registers larq's layers, quantizers and constraints with Keras)
            import tensorflow as tf
            import tf_keras  # noqa: F401  (the legacy Keras that TF_USE_LEGACY_KERAS selects)
    except ImportError as error:
        raise ConversionError(f"converting a Keras model needs the keras extra ({error.name or error} is missing): "
                              'pip install "bnn2onnx[keras]"') from error

    return tf


# Initializers, regularizers and constraints only matter for training; a saved model whose custom ones are not
# registered here (e.g. larq_zoo QuickNet's blurpool_initializer) loads with neutral stand-ins, and the saved
# weights then replace whatever the stand-in initialized.
TRAINING_ONLY_OBJECT = re.compile(r"Unknown (initializer|regularizer|constraint): '([^']+)'")


def _stand_in(tf: ModuleType, kind: str) -> Any:
    if kind == "initializer":
        return tf.keras.initializers.Zeros
    if kind == "regularizer":
        return lambda weights: 0.0
    return lambda weights: weights


def _register_larq_zoo_objects() -> bool:
    """Imports larq_zoo, if installed and not imported yet, for the custom quantizers its models use (e.g.
    XNORNet's xnor_weight_scale); True when that may let a failed load succeed."""
    import importlib.util
    import sys

    if "larq_zoo" in sys.modules or importlib.util.find_spec("larq_zoo") is None:
        return False
    import larq_zoo  # noqa: F401  (registers its custom objects with Keras)

    return True


def is_keras_source(path: Path) -> bool:
    return path.suffix.lower() in KERAS_SUFFIXES or (path.is_dir() and (path / "saved_model.pb").is_file())


def keras3_version(path: Path) -> str | None:
    """The Keras version that saved a .keras file, when it is Keras 3 (whose format legacy Keras cannot read)."""
    if path.suffix.lower() != ".keras" or not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        if "metadata.json" not in archive.namelist():
            return None
        try:
            version = str(json.loads(archive.read("metadata.json")).get("keras_version", ""))
        except (ValueError, AttributeError):
            return None
    return version if version.startswith("3") else None


def h5_has_lambda_layers(path: Path) -> bool:
    """Whether an .h5 model's config has a Lambda layer: Keras runs their stored Python code from .h5 files
    without asking (its safe_mode covers .keras only), so the opt-in is checked here for both."""
    if path.suffix.lower() not in (".h5", ".hdf5"):
        return False
    import h5py

    try:
        with h5py.File(path, "r") as file:
            config = file.attrs.get("model_config")
    except OSError:
        return False  # not readable as HDF5: load_model says why
    if isinstance(config, bytes):
        config = config.decode(errors="replace")
    return isinstance(config, str) and '"class_name": "Lambda"' in config


def lambda_needs_trust(path: Path) -> ConversionError:
    return ConversionError(f"{path} has a Lambda layer, whose Python code Keras runs only from a trusted file: if "
                           "you trust its source, pass --trust-lambda (CLI) or trust_lambda=True (Python API)")


def load_keras_model(path: str | Path, trust_lambda: bool = False) -> Any:
    """A tf.keras Model from a .h5/.keras file or a SavedModel directory; ConversionError with the reason.
    `trust_lambda`: let Keras run the Python code of Lambda layers stored in the file (its safe_mode=False):
    only for files from a trusted source."""
    path = Path(path)
    if not path.exists():
        raise ConversionError(f"{path}: no such file or directory")
    if not is_keras_source(path):
        raise ConversionError(f"{path}: not a Keras model (expected .h5, .keras or a SavedModel directory)")
    if version := keras3_version(path):
        raise ConversionError(f"{path} was saved by Keras {version}; Larq models need Keras 2: load and save it "
                              "with tf_keras (pip install tf-keras; TF_USE_LEGACY_KERAS=1), or save as .h5")
    tf = tensorflow_for_larq()  # first: it names the keras extra when a package of it is missing (h5py too)
    if not trust_lambda and h5_has_lambda_layers(path):
        raise lambda_needs_trust(path)
    stand_ins: dict[str, Any] = {}
    while True:
        try:
            model = tf.keras.models.load_model(path, compile=False, custom_objects=stand_ins,
                                               safe_mode=not trust_lambda)
            break
        except Exception as error:  # Keras raises many types for unreadable or foreign files
            if "safe_mode" in str(error):
                raise lambda_needs_trust(path) from error
            missing = TRAINING_ONLY_OBJECT.search(str(error))
            if missing and missing.group(2) not in stand_ins:
                stand_ins[missing.group(2)] = _stand_in(tf, missing.group(1))
                continue
            if _register_larq_zoo_objects():
                continue
            raise ConversionError(f"{path}: cannot load as a Keras model: {first_line(error)}") from error
    if not isinstance(model, tf.keras.Model):
        raise ConversionError(f"{path}: loads as {type(model).__name__}, not a Keras Model")
    return model


def quantized_layers(model: Any) -> list[Any]:
    return [layer for layer in model.submodules if getattr(layer, "kernel_quantizer", None) is not None]


@contextmanager
def prepared_for_export(model: Any, owned: bool) -> Iterator[None]:
    """Within the block, `model` holds its quantized kernels and no kernel quantizers, and computes grouped
    convolutions without XLA (convolve_groups_without_xla); afterwards it is restored, unless `owned` (loaded for
    this conversion only: restoring would keep a copy of every kernel). The model is changed in place rather than
    cloned: a clone is rebuilt from the config, which a quantizer written as a plain function or a subclassed
    model does not survive."""
    tf = tensorflow_for_larq()
    undo: list[Callable[[], None]] = []
    for layer in quantized_layers(model):
        kernel = layer.kernel
        latent = getattr(kernel, "latent_variable", kernel)  # larq wraps kernels in a QuantizedVariable
        if not owned:
            undo.append(partial(_restore_kernel, layer, kernel, latent, latent.numpy(), layer.kernel_quantizer,
                                getattr(kernel, "quantizer", None)))
        latent.assign(layer.kernel_quantizer(tf.convert_to_tensor(latent)))
        # The layer and its QuantizedVariable both hold the quantizer; with neither, reading the kernel is a
        # plain read of the quantized values, and the traced graph has no quantizer ops for tf2onnx to fold.
        if hasattr(kernel, "quantizer"):
            kernel.quantizer = None
        layer.kernel_quantizer = None
    undo += convolve_groups_without_xla(model)
    try:
        yield
    finally:
        if not owned:
            for step in reversed(undo):
                step()


def _restore_kernel(layer: Any, kernel: Any, latent: Any, values: np.ndarray, layer_quantizer: Any,
                    variable_quantizer: Any) -> None:
    latent.assign(values)
    if hasattr(kernel, "quantizer"):
        kernel.quantizer = variable_quantizer
    layer.kernel_quantizer = layer_quantizer


def keras_to_float_onnx(model: Any, owned: bool = False) -> onnx.ModelProto:
    """The canonical float ONNX of a Keras model (dynamic batch), kernels pre-quantized. `owned`: the model was
    loaded for this conversion only, so it may be left changed (prepared_for_export)."""
    tf = tensorflow_for_larq()
    import tf2onnx

    from bnn2onnx.frontends.tf2onnx_memory import constants_copied_once

    signature = [tf.TensorSpec([None, *tensor.shape[1:]], tensor.dtype, name=name)
                 for tensor, name in zip(model.inputs, model.input_names)]
    # TF2ONNX_CATCH_ERRORS=FALSE: an optimizer that fails must stop the conversion, not be skipped silently.
    os.environ["TF2ONNX_CATCH_ERRORS"] = "FALSE"
    try:
        with prepared_for_export(model, owned), constants_copied_once():
            proto, storage = tf2onnx.convert.from_keras(model, input_signature=signature, opset=ONNX_OPSET,
                                                        large_model=True)
    except ConversionError:
        raise
    except Exception as error:
        raise ConversionError(f"tf2onnx could not export {model.name!r}: {error}") from error
    proto = with_external_tensors_inlined(proto, storage.name_to_tensor_data)
    del storage
    release_freed_memory()
    check_only_onnx_ops(proto, model.name)
    name_batch_dimension(proto)
    return proto


def name_batch_dimension(proto: onnx.ModelProto) -> None:
    """tf2onnx names each free dimension of the inputs and outputs on its own (`unk__113`, `unk__114`); the first one
    of every Keras input and output is the batch, so it is called that."""
    for value in [*proto.graph.input, *proto.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"


def convolve_groups_without_xla(model: Any) -> list[Callable[[], None]]:
    """Keras runs a grouped convolution (groups > 1) through an XLA-compiled function, which tf2onnx cannot
    export (it leaves a TensorFlow PartitionedCall node); the same convolution op called directly is a plain
    Conv2D, which tf2onnx exports as an ONNX Conv with `group`. Same values: XLA only compiles that op. Returns
    how to undo it."""
    undo = []
    for layer in model.submodules:
        if getattr(layer, "groups", 1) > 1 and hasattr(layer, "convolution_op"):
            layer._jit_compiled_convolution_op = layer.convolution_op
            undo.append(partial(delattr, layer, "_jit_compiled_convolution_op"))
    return undo


def check_only_onnx_ops(proto: onnx.ModelProto, name: str) -> None:
    """tf2onnx keeps a TensorFlow op it cannot convert as a node of that op type; name them rather than fail
    later on a node no ONNX runtime knows."""
    unknown = sorted({f"{n.op_type} ({n.name})" for n in proto.graph.node if not onnx.defs.has(n.op_type, n.domain)})
    if unknown:
        raise ConversionError(f"tf2onnx could not convert these TensorFlow ops of {name!r}: {', '.join(unknown)}")


def release_freed_memory() -> None:
    """TensorFlow and tf2onnx free several model-sized buffers after an export, but glibc keeps the pages;
    handing them back keeps the next stages from stacking on top of them (BinaryAlexNet: 2.9 -> 2.0 GB)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def with_external_tensors_inlined(proto: onnx.ModelProto, data: dict[str, bytes]) -> onnx.ModelProto:
    """tf2onnx's large_model output keeps big initializers outside the proto; put them back inside."""
    for tensor in proto.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next(entry.value for entry in tensor.external_data if entry.key == "location")
        tensor.raw_data = data[location]
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT
    return proto


def layer_values(model: Any, input_names: list[str], feeds: dict[str, np.ndarray],
                 tensor_names: list[str]) -> dict[str, np.ndarray]:
    """The Keras model's own values of the float-ONNX tensors named after one of its layers' outputs
    (tf2onnx names them "<model>/<layer>/...:0"), in ONNX's channel-first layout."""
    tf = tensorflow_for_larq()
    layers = {}
    for name in tensor_names:
        parts = name.split("/")
        if len(parts) < 3 or parts[0] != model.name:
            continue
        try:
            layer = model.get_layer(parts[1])
        except ValueError:
            continue
        if not isinstance(layer.output, list):
            layers[name] = layer
    if not layers:
        return {}
    probe = tf.keras.Model(model.inputs, [layer.output for layer in layers.values()])
    outputs = probe([feeds[n] for n in input_names] if len(input_names) > 1 else feeds[input_names[0]],
                    training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    values = {}
    for name, value in zip(layers, outputs):
        value = np.asarray(value)
        values[name] = np.moveaxis(value, -1, 1) if value.ndim > 2 else value  # NHWC -> NCHW
    return values
