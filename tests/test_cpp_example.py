"""examples/cpp/run_model, the deployment without Python: built for this machine and run with the onnxruntime
of the Python environment, and cross-built for aarch64 and run under qemu with Debian trixie's onnxruntime 1.21;
both must give the converted model's outputs that Python gives here, bit for bit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from library_builds import ROOT, cross_build, example_program

import bnn2onnx

sys.path.insert(0, str(Path(__file__).resolve().parent / "arm"))

import debian_sysroot


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    """The digits model converted, an input batch, and Python's outputs for it."""
    directory = tmp_path_factory.mktemp("cpp")
    model = bnn2onnx.convert(ROOT / "models" / "digits_bnn.h5", verify_result=False)
    onnx.save(model, directory / "digits.onnx")
    x = np.random.default_rng(3).uniform(-1, 1, (16, 8, 8, 1)).astype(np.float32)
    np.save(directory / "x.npy", x)
    expected = bnn2onnx.inference_session(model).run(None, {model.graph.input[0].name: x})[0]
    return directory / "digits.onnx", directory / "x.npy", expected


def run_program(prefix: list[str], program: Path, runtime: Path, library: Path, model: Path, inputs: Path,
                outputs: Path) -> str:
    result = subprocess.run([*prefix, str(program), str(runtime), str(library), str(model), str(inputs),
                             str(outputs), "2"], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    return result.stdout


def test_example_program_on_this_machine(converted, tmp_path: Path) -> None:
    model, inputs, expected = converted
    runtime = next((Path(onnxruntime.__file__).parent / "capi").glob("libonnxruntime.so*"))
    printed = run_program([], example_program(), runtime, bnn2onnx.library_path(), model, inputs,
                          tmp_path / "y.npy")
    assert f"argmax per row: {' '.join(map(str, expected.argmax(1)))}" in printed, printed
    assert np.array_equal(np.load(tmp_path / "y.npy"), expected)


def test_example_program_cross_built_for_aarch64_under_qemu(converted, tmp_path: Path) -> None:
    model, inputs, expected = converted
    printed = run_program(debian_sysroot.emulator("arm64"), example_program("aarch64-linux-gnu"),
                          debian_sysroot.onnxruntime_library("arm64"), cross_build("aarch64-linux-gnu").library,
                          model, inputs, tmp_path / "y.npy")
    assert "onnxruntime 1.21" in printed, printed
    assert np.array_equal(np.load(tmp_path / "y.npy"), expected)
