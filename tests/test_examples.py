"""The README's demos run and report exact agreement."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_digits_demo_converts_and_agrees_with_keras(tmp_path: Path) -> None:
    out_dir = tmp_path / "not" / "yet"  # as build/demo in a fresh clone: the demo makes it
    out = run_example("digits_demo.py", str(out_dir))
    assert "prediction agreement 100.00%" in out, out
    assert (out_dir / "digits_bnn.onnx").is_file()


def test_binary_layers_demo_agrees_with_reference() -> None:
    lines = [line for line in run_example("binary_layers_demo.py").splitlines() if "thread(s)" in line]
    assert len(lines) == 2 and all("argmax agreement 100%" in line for line in lines), lines


def test_pytorch_digits_demo_agrees_with_pytorch_through_both_exporters() -> None:
    pytest.importorskip("torch")
    lines = [line for line in run_example("pytorch_digits_demo.py").splitlines() if "exporter:" in line]
    assert len(lines) == 2 and all("prediction agreement 100.00%" in line for line in lines), lines
