"""The oldest supported onnxruntime (requirements/oldest-onnxruntime.txt) in its own environment, built once into
build/oldest-onnxruntime: the installed library's ops match the numpy reference there, and a model converted with
the newest onnx loads there and gives the same outputs, bit for bit, as the current onnxruntime."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import session_report
from ort_helpers import run

import bnn2onnx

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements" / "oldest-onnxruntime.txt"
ENVIRONMENT = ROOT / "build" / "oldest-onnxruntime"
CASES_PER_OP = 40


def oldest_python() -> Path:
    """The environment's python, (re)built when the requirements changed."""
    python = ENVIRONMENT / "bin" / "python"
    stamp = ENVIRONMENT / "requirements.sha256"
    want = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if not python.exists() or not stamp.exists() or stamp.read_text() != want:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(ENVIRONMENT)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)], check=True,
                       capture_output=True)
        stamp.write_text(want)
    return python


def test_ops_and_a_converted_model_in_the_oldest_onnxruntime(tmp_path: Path) -> None:
    model = bnn2onnx.convert(ROOT / "models" / "digits_bnn.h5")
    onnx.save(model, tmp_path / "digits.onnx")
    x = np.random.default_rng(0).uniform(-1, 1, (64, 8, 8, 1)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "BNN2ONNX_LIBRARY": str(bnn2onnx.library_path())}
    result = subprocess.run([str(oldest_python()), str(ROOT / "tests" / "oldest_runtime_check.py"), str(CASES_PER_OP),
                             str(tmp_path / "digits.onnx"), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
                            capture_output=True, text=True, env=environment, timeout=900, check=False)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 5, result.stdout
    session_report.add(f"oldest onnxruntime: {lines[0].split(':')[0]}, {CASES_PER_OP} cases per op matched the "
                       "reference, and the converted digits model gave the current runtime's outputs bit for bit")
    assert np.array_equal(np.load(tmp_path / "y.npy"), run(model, {model.graph.input[0].name: x}))
