"""Trains the shipped demo model, models/digits_bnn.h5: a Larq BNN on scikit-learn's bundled 8x8 digits.

The seed's recipe: a float first layer and a float last layer; batch norm after every binary layer; a binary
block without residual (VGG-style: its batch norm becomes integer thresholds) followed by a max-pool, binary
blocks with a residual around them (Bi-Real-style: float outputs), and a binary dense layer.
Fixed seeds; runs in well under a minute on 2 cores.   Usage: python models/train_digits_bnn.py [OUT.h5]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from bnn2onnx.frontends.keras import tensorflow_for_larq

SEED = 0
BINARY = {"input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign", "kernel_constraint": "weight_clip",
          "use_bias": False}


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, x_test, y_train, y_test): 8x8x1 images scaled to [-1, 1], a fixed 75/25 split."""
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 8.0 - 1.0)[..., None]
    return tuple(train_test_split(x, digits.target, test_size=0.25, random_state=SEED, stratify=digits.target))


def build_model(tf, lq):
    def binary_conv(h, name, pad_values=0.0):
        h = lq.layers.QuantConv2D(48, 3, padding="same", pad_values=pad_values, name=name, **BINARY)(h)
        return tf.keras.layers.BatchNormalization(name=f"{name}_bn")(h)

    x = tf.keras.Input((8, 8, 1), name="image")
    h = tf.keras.layers.Conv2D(32, 3, padding="same", use_bias=False, name="float_stem")(x)
    h = tf.keras.layers.BatchNormalization(name="stem_bn")(h)
    # VGG-style blocks, no residual: their batch norms become integer thresholds (packed outputs), and the
    # max-pool runs on packed bits.
    h = binary_conv(h, "binary_conv1")
    h = binary_conv(h, "binary_conv2")
    h = tf.keras.layers.MaxPool2D(2, name="pool")(h)
    h = binary_conv(h, "binary_conv3")
    # Bi-Real-style blocks: a residual around each binary conv (one with larq's +1 padding): float outputs.
    for name, pad_values in (("binary_conv4", 1.0), ("binary_conv5", 0.0)):
        h = tf.keras.layers.Add(name=f"{name}_residual")([binary_conv(h, name, pad_values), h])
    h = tf.keras.layers.Flatten(name="flatten")(h)
    h = lq.layers.QuantDense(64, name="binary_dense", **BINARY)(h)
    h = tf.keras.layers.BatchNormalization(name="binary_dense_bn")(h)
    logits = tf.keras.layers.Dense(10, name="float_classifier")(h)
    return tf.keras.Model(x, logits, name="digits_bnn")


def main(out: Path) -> None:
    tf = tensorflow_for_larq()
    import larq as lq

    tf.keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    x_train, x_test, y_train, y_test = digits_split()
    model = build_model(tf, lq)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=60, batch_size=64, verbose=0,
              callbacks=[tf.keras.callbacks.ReduceLROnPlateau("loss", factor=0.5, patience=5)])
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test accuracy {accuracy:.4f} on {len(x_test)} digits")
    if accuracy < 0.9:
        raise SystemExit("accuracy below 90%: not saving")
    model.save(out, include_optimizer=False)
    print(f"saved {out} ({out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "digits_bnn.h5")
