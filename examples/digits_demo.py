"""The main demo: convert the shipped Larq model (models/digits_bnn.h5) with the bnn2onnx CLI, run it in
onnxruntime on the digits test set, and compare with Keras: accuracy, prediction agreement, size.

    python examples/digits_demo.py [OUT_DIR]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

import bnn2onnx
from bnn2onnx.frontends.keras import load_keras_model

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models"))
from train_digits_bnn import digits_split


def main(out_dir: Path) -> None:
    source = ROOT / "models" / "digits_bnn.h5"
    converted = out_dir / "digits_bnn.onnx"
    out_dir.mkdir(parents=True, exist_ok=True)
    cli = Path(sys.executable).parent / "bnn2onnx"  # the installed console script
    subprocess.run([str(cli), "convert", str(source), "-o", str(converted)], check=True)

    _, x_test, _, y_test = digits_split()
    keras_logits = np.asarray(load_keras_model(source)(x_test, training=False))
    session = bnn2onnx.inference_session(converted)
    onnx_logits = session.run(None, {session.get_inputs()[0].name: x_test})[0]
    keras_pred, onnx_pred = keras_logits.argmax(1), onnx_logits.argmax(1)
    print(f"digits test set ({len(y_test)} images):")
    print(f"  Keras accuracy {np.mean(keras_pred == y_test):.2%}, ONNX accuracy {np.mean(onnx_pred == y_test):.2%}")
    print(f"  prediction agreement {np.mean(keras_pred == onnx_pred):.2%}, "
          f"max |logit difference| {np.abs(keras_logits - onnx_logits).max():.2e}")
    print(f"  size: Keras .h5 {source.stat().st_size / 1024:.0f} KiB, converted ONNX "
          f"{converted.stat().st_size / 1024:.0f} KiB")
    if not np.array_equal(keras_pred, onnx_pred):
        raise SystemExit("predictions differ")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "demo")
