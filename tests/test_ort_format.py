"""The ORT format, which onnxruntime's minimal (mobile, embedded) builds read: onnxruntime's own converter, given
the library, turns a converted model into a .ort file that gives the same outputs, bit for bit, and writes the
operator config a minimal build is compiled with, bnn2onnx's ops included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx

import bnn2onnx

ROOT = Path(__file__).resolve().parent.parent


def test_converted_model_in_ort_format_gives_the_same_outputs(tmp_path: Path) -> None:
    model = bnn2onnx.convert(ROOT / "models" / "digits_bnn.h5", verify_result=False)
    onnx.save(model, tmp_path / "digits.onnx")
    result = subprocess.run([sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort",
                             "--custom_op_library", str(bnn2onnx.library_path()), str(tmp_path / "digits.onnx")],
                            capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    config = (tmp_path / "digits.required_operators.config").read_text()
    assert "bnn2onnx;1;BinaryConv2D,BinaryDense,BinaryMaxPool2D" in config, config
    x = np.random.default_rng(4).uniform(-1, 1, (16, 8, 8, 1)).astype(np.float32)
    name = model.graph.input[0].name
    expected = bnn2onnx.inference_session(model).run(None, {name: x})[0]
    assert np.array_equal(bnn2onnx.inference_session(tmp_path / "digits.ort").run(None, {name: x})[0], expected)
