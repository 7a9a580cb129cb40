"""Keras/Larq frontend: load a .h5, .keras or SavedModel with larq's layers, and export a float ONNX via tf2onnx.

Larq only works with legacy Keras 2 (tf-keras): TF_USE_LEGACY_KERAS must be set before TensorFlow is first
imported, so every TensorFlow import in bnn2onnx goes through `tensorflow_for_larq()`.

Before export, every kernel quantizer is applied once and its result stored as the layer's kernel (the layer
then has no kernel quantizer). Keras computes exactly these values at inference, so the model is unchanged;
but tf2onnx no longer constant-folds a quantizer graph over each kernel, which is what made it peak at 14 GB on
BinaryAlexNet's large dense layers (each fold materialises several full copies of the kernel in TF's grappler).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnx

from bnn2onnx.errors import ConversionError

KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")
# tf2onnx 1.17 supports opsets up to 18.
ONNX_OPSET = 17


def tensorflow_for_larq() -> ModuleType:
    """TensorFlow with legacy Keras, plus larq's layers registered."""
    existing = os.environ.get("TF_USE_LEGACY_KERAS")
    if existing not in (None, "1", "true", "True"):
        raise ConversionError(f"TF_USE_LEGACY_KERAS={existing!r}: larq needs legacy Keras; unset it or set it to 1")
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    import larq  # noqa: F401  (registers larq's layers, quantizers and constraints with Keras)

    return tf


def is_keras_source(path: Path) -> bool:
    return path.suffix.lower() in KERAS_SUFFIXES or (path.is_dir() and (path / "saved_model.pb").is_file())


def load_keras_model(path: str | Path) -> Any:
    """A tf.keras Model from a .h5/.keras file or a SavedModel directory; ConversionError with the reason."""
    path = Path(path)
    if not path.exists():
        raise ConversionError(f"{path}: no such file or directory")
    if not is_keras_source(path):
        raise ConversionError(f"{path}: not a Keras model (expected .h5, .keras or a SavedModel directory)")
    tf = tensorflow_for_larq()
    try:
        model = tf.keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for unreadable or foreign files
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConversionError(f"{path}: cannot load as a Keras model: {first_line}") from error
    if not isinstance(model, tf.keras.Model):
        raise ConversionError(f"{path}: loads as {type(model).__name__}, not a Keras Model")
    return model


def bake_kernel_quantizers(model: Any) -> Any:
    """A copy of `model` whose quantized layers hold their quantized kernels and have no kernel quantizer."""
    tf = tensorflow_for_larq()

    def without_kernel_quantizer(layer: Any) -> Any:
        config = layer.get_config()
        if config.get("kernel_quantizer") is not None:
            config = {**config, "kernel_quantizer": None, "kernel_constraint": None}
        return layer.__class__.from_config(config)

    try:
        baked = tf.keras.models.clone_model(model, clone_function=without_kernel_quantizer)
    except Exception as error:
        raise ConversionError(f"cannot rebuild model {model.name!r} from its config (subclassed models are not "
                              f"supported; save a functional or Sequential model): {error}") from error
    for source, target in zip(model.layers, baked.layers):
        weights = source.get_weights()
        quantizer = getattr(source, "kernel_quantizer", None)
        if quantizer is not None and weights:
            kernel_index = next(i for i, w in enumerate(source.weights) if w is source.kernel)
            weights[kernel_index] = np.asarray(quantizer(tf.constant(weights[kernel_index])))
        target.set_weights(weights)
    return baked


def keras_to_float_onnx(model: Any) -> onnx.ModelProto:
    """The canonical float ONNX of a Keras model (dynamic batch), kernels pre-quantized."""
    tf = tensorflow_for_larq()
    import tf2onnx

    from bnn2onnx.frontends.tf2onnx_memory import constants_copied_once

    baked = bake_kernel_quantizers(model)
    signature = [tf.TensorSpec([None, *tensor.shape[1:]], tensor.dtype, name=name)
                 for tensor, name in zip(baked.inputs, model.input_names)]
    # TF2ONNX_CATCH_ERRORS=FALSE: an optimizer that fails must stop the conversion, not be skipped silently.
    os.environ["TF2ONNX_CATCH_ERRORS"] = "FALSE"
    try:
        with constants_copied_once():
            proto, storage = tf2onnx.convert.from_keras(baked, input_signature=signature, opset=ONNX_OPSET,
                                                        large_model=True)
    except Exception as error:
        raise ConversionError(f"tf2onnx could not export {model.name!r}: {error}") from error
    return with_external_tensors_inlined(proto, storage.name_to_tensor_data)


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
