"""Small Larq models for the converter tests, built the way the seed guide builds BNNs, with randomized batch-norm
statistics (default statistics make every pre-activation land on a float tie at exactly 0). Weights are seeded,
so a test sees the same model on every run: a random model now and then has a pre-activation within float32
rounding of 0 that Keras and onnxruntime round to opposite signs (a sign tie, see bnn2onnx/verification.py),
which made the exact comparisons fail for about one random model in four."""

from __future__ import annotations

import numpy as np

from bnn2onnx.frontends.keras import tensorflow_for_larq

tf = tensorflow_for_larq()
import larq as lq

BINARY = {"input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign", "kernel_constraint": "weight_clip",
          "use_bias": False}


def randomize_batch_norms(model, seed: int = 0, special_gammas: bool = False):
    """Random gamma/beta/mean/variance; with special_gammas some gammas are negative and one is exactly 0 (a
    threshold direction of -1 and a constant output channel)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if not isinstance(layer, tf.keras.layers.BatchNormalization):
            continue
        values = []
        for weight, current in zip(layer.weights, layer.get_weights()):
            kind = weight.name.split("/")[-1].split(":")[0]
            if kind == "gamma":
                gamma = rng.normal(1.0, 0.3, current.shape)
                if special_gammas:
                    gamma[::3] *= -1
                    gamma[1] = 0.0
                values.append(gamma)
            elif kind in ("beta", "moving_mean"):
                values.append(rng.normal(0.0, 0.5, current.shape))
            else:
                values.append(rng.uniform(0.5, 1.5, current.shape))
        layer.set_weights(values)
    return model


def vgg_style(seed: int = 0):
    """binary conv -> BN -> binary conv ... with no residual (BinaryNet), a max-pool, binary dense layers."""
    tf.keras.utils.set_random_seed(seed)
    x = tf.keras.Input((16, 16, 3))
    h = tf.keras.layers.Conv2D(32, 3, padding="same", use_bias=False)(x)
    h = tf.keras.layers.BatchNormalization()(h)
    h = lq.layers.QuantConv2D(64, 3, padding="same", **BINARY)(h)
    h = tf.keras.layers.BatchNormalization()(h)
    h = tf.keras.layers.MaxPool2D(2)(h)
    h = lq.layers.QuantConv2D(70, 3, padding="same", pad_values=1.0, **BINARY)(h)
    h = tf.keras.layers.BatchNormalization()(h)
    h = lq.layers.QuantConv2D(96, 3, strides=2, padding="same", **BINARY)(h)
    h = tf.keras.layers.BatchNormalization()(h)
    h = tf.keras.layers.Flatten()(h)
    h = lq.layers.QuantDense(100, **BINARY)(h)
    h = tf.keras.layers.BatchNormalization()(h)
    h = lq.layers.QuantDense(10, **BINARY)(h)
    h = tf.keras.layers.BatchNormalization()(h)
    return randomize_batch_norms(tf.keras.Model(x, h, name="vgg_style"), special_gammas=True)


def bireal_style(seed: int = 0):
    """A residual around every binary conv (Bi-Real): every binary layer keeps a float output."""
    tf.keras.utils.set_random_seed(seed)
    x = tf.keras.Input((16, 16, 3))
    h = tf.keras.layers.Conv2D(48, 3, padding="same", use_bias=False)(x)
    h = tf.keras.layers.BatchNormalization()(h)
    for strides, pad_values in ((1, 0.0), (1, 1.0), (1, 0.0)):
        y = lq.layers.QuantConv2D(48, 3, strides=strides, padding="same", pad_values=pad_values, **BINARY)(h)
        y = tf.keras.layers.BatchNormalization()(y)
        h = tf.keras.layers.Add()([y, h])
    h = tf.keras.layers.GlobalAveragePooling2D()(h)
    h = tf.keras.layers.Dense(10)(h)
    return randomize_batch_norms(tf.keras.Model(x, h, name="bireal_style"))


def layer_options(seed: int = 0):
    """Binary convs with larq's other options: groups (Keras runs them through XLA, which tf2onnx cannot export),
    dilation, and a depthwise conv."""
    tf.keras.utils.set_random_seed(seed)
    x = tf.keras.Input((12, 12, 8))
    h = tf.keras.layers.Conv2D(32, 3, padding="same", use_bias=False)(x)
    h = tf.keras.layers.BatchNormalization()(h)
    h = lq.layers.QuantConv2D(32, 3, padding="same", groups=4, **BINARY)(h)
    h = tf.keras.layers.BatchNormalization()(h)
    h = lq.layers.QuantConv2D(40, 3, padding="same", dilation_rate=2, **BINARY)(h)
    h = tf.keras.layers.BatchNormalization()(h)
    h = lq.layers.QuantDepthwiseConv2D(3, padding="same", input_quantizer="ste_sign", depthwise_quantizer="ste_sign",
                                       use_bias=False)(h)
    h = tf.keras.layers.BatchNormalization()(h)
    h = tf.keras.layers.GlobalAveragePooling2D()(h)
    h = tf.keras.layers.Dense(10)(h)
    return randomize_batch_norms(tf.keras.Model(x, h, name="layer_options"))


def conv1d_options(seed: int = 0):
    """Binary Conv1D layers (tf2onnx runs them as 2-D convs behind ExpandDims), with +1 padding and dilation."""
    tf.keras.utils.set_random_seed(seed)
    x = tf.keras.Input((64, 8))
    h = tf.keras.layers.Conv1D(16, 3, padding="same")(x)
    h = tf.keras.layers.BatchNormalization()(h)
    h = lq.layers.QuantConv1D(32, 3, padding="same", **BINARY)(h)
    h = tf.keras.layers.BatchNormalization()(h)
    h = lq.layers.QuantConv1D(32, 3, padding="same", pad_values=1.0, dilation_rate=2, **BINARY)(h)
    h = tf.keras.layers.BatchNormalization()(h)
    h = tf.keras.layers.GlobalAveragePooling1D()(h)
    return randomize_batch_norms(tf.keras.Model(x, tf.keras.layers.Dense(10)(h), name="conv1d_options"))


def dorefa_style(seed: int = 0):
    """DoReFa-Net's layers: 2-bit activations (DoReFaQuantizer) against binary, magnitude-scaled weights; no layer
    has a binary input, so nothing becomes a binary op."""
    tf.keras.utils.set_random_seed(seed)
    quantized = {"input_quantizer": lq.quantizers.DoReFaQuantizer(k_bit=2),
                 "kernel_quantizer": "magnitude_aware_sign", "use_bias": False}
    x = tf.keras.Input((16, 16, 3))
    h = tf.keras.layers.Conv2D(32, 3, padding="same", use_bias=False)(x)
    h = tf.keras.layers.BatchNormalization()(h)
    for filters in (32, 64):
        h = lq.layers.QuantConv2D(filters, 3, padding="same", **quantized)(h)
        h = tf.keras.layers.BatchNormalization()(h)
    h = tf.keras.layers.GlobalAveragePooling2D()(h)
    return randomize_batch_norms(tf.keras.Model(x, tf.keras.layers.Dense(10)(h), name="dorefa_style"))


def lambda_model():
    """A binary conv behind a Lambda layer, whose Python code a saved file carries."""
    x = tf.keras.Input((8, 8, 3))
    h = tf.keras.layers.Conv2D(16, 3, padding="same")(x)
    h = tf.keras.layers.Lambda(lambda t: t * 0.5)(h)
    h = lq.layers.QuantConv2D(16, 3, padding="same", **BINARY)(h)
    return tf.keras.Model(x, tf.keras.layers.GlobalAveragePooling2D()(h), name="lambda_model")


def sign_function(x):
    """A binarizer written as a plain function, as Larq Compute Engine's own tests write one."""
    return tf.where(x >= 0, tf.ones_like(x), -tf.ones_like(x))


def function_binarizer(seed: int = 0):
    """Binary conv and dense layers whose input and kernel quantizers are sign_function."""
    tf.keras.utils.set_random_seed(seed)
    binary = {"input_quantizer": sign_function, "kernel_quantizer": sign_function, "use_bias": False}
    x = tf.keras.Input((8, 8, 3))
    h = tf.keras.layers.Conv2D(16, 3, padding="same")(x)
    h = tf.keras.layers.BatchNormalization()(h)
    h = lq.layers.QuantConv2D(24, 3, padding="same", **binary)(h)
    h = tf.keras.layers.BatchNormalization()(h)
    h = tf.keras.layers.Flatten()(h)
    h = lq.layers.QuantDense(10, **binary)(h)
    return randomize_batch_norms(tf.keras.Model(x, h, name="function_binarizer"))


def binary_layer_count(model) -> int:
    """Quantized conv/dense layers with both a binary input quantizer and a binary kernel quantizer."""
    return sum(1 for layer in model.layers
               if isinstance(layer, (lq.layers.QuantConv1D, lq.layers.QuantConv2D, lq.layers.QuantDepthwiseConv2D,
                                     lq.layers.QuantDense))
               and layer.input_quantizer is not None
               and (getattr(layer, "kernel_quantizer", None) or getattr(layer, "depthwise_quantizer", None)))
