"""examples/cpp/run_model, the deployment without Python: built for this machine and run with the onnxruntime
of the Python environment, and cross-built for aarch64 and run under qemu with Debian trixie's onnxruntime 1.21;
both must give the converted model's outputs that Python gives here: bit for bit for the digits model, and for
QuickNet the same classes with logits a few units in the last place apart, as onnxruntime sums QuickNet's float
convolutions and dense layer in another order on aarch64."""

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
import session_report


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


@pytest.fixture(scope="module")
def quicknet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """larq_zoo QuickNet with random weights and batch norms, converted, with its logits (the softmax's input) as
    the first output, so the comparison sees the values before a softmax rounds most of them to 0."""
    from keras_models import randomize_batch_norms, tf

    tf.keras.utils.set_random_seed(0)  # the zoo's weight initializers draw from it
    import larq_zoo  # after keras_models, which sets up the legacy Keras larq needs
    model = bnn2onnx.convert(randomize_batch_norms(larq_zoo.sota.QuickNet(weights=None, input_shape=(224, 224, 3))),
                             verify_result=False)
    softmax = next(node for node in model.graph.node if node.op_type == "Softmax")
    model.graph.output.insert(0, onnx.helper.make_tensor_value_info(softmax.input[0], onnx.TensorProto.FLOAT, None))
    path = tmp_path_factory.mktemp("quicknet") / "quicknet.onnx"
    onnx.save(model, path)
    return path


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


def test_example_program_runs_quicknet_under_qemu_like_x86(quicknet: Path, tmp_path: Path) -> None:
    model = onnx.load(quicknet)
    x = np.random.default_rng(4).uniform(-1, 1, (2, 224, 224, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    logits, probabilities = bnn2onnx.inference_session(model).run(None, {model.graph.input[0].name: x})
    printed = run_program(debian_sysroot.emulator("arm64"), example_program("aarch64-linux-gnu"),
                          debian_sysroot.onnxruntime_library("arm64"), cross_build("aarch64-linux-gnu").library,
                          quicknet, tmp_path / "x.npy", tmp_path / "y.npy")
    on_arm = np.load(tmp_path / "y.npy")
    assert f"argmax per row: {' '.join(map(str, probabilities.argmax(1)))}" in printed, printed
    # A binarizer that flipped on one architecture would move the logits by whole multiples of a layer's scale;
    # the float layers' different summation order moves them by a few units in the last place.
    ulps = np.abs(on_arm - logits).max() / np.spacing(np.abs(logits).max())
    assert ulps <= 64, ulps
    session_report.add(f"QuickNet under qemu-aarch64 (C++, onnxruntime 1.21) vs x86 (Python): same argmax, "
                       f"logits within {ulps:.1f} units in the last place of the largest")
