"""Running a converted model needs only onnxruntime and numpy (README, "Deploying"): a device has neither the
converter's packages nor onnx."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from library_builds import ROOT

import bnn2onnx

CONVERTER_PACKAGES = ["onnx", "onnx_graphsurgeon", "rich", "tensorflow", "tf_keras", "larq", "torch", "h5py"]


def test_a_converted_model_runs_with_only_onnxruntime_and_numpy(tmp_path: Path) -> None:
    model = bnn2onnx.convert(ROOT / "models" / "digits_bnn.h5", verify_result=False)
    onnx.save(model, tmp_path / "digits.onnx")
    x = np.random.default_rng(5).uniform(-1, 1, (8, 8, 8, 1)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    expected = bnn2onnx.inference_session(model).run(None, {model.graph.input[0].name: x})[0]
    script = (f"import sys\nfor name in {CONVERTER_PACKAGES!r}: sys.modules[name] = None\n"
              "import numpy as np, bnn2onnx\n"
              f"session = bnn2onnx.inference_session({str(tmp_path / 'digits.onnx')!r})\n"
              f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
              f"np.save({str(tmp_path / 'y.npy')!r}, session.run(None, {{session.get_inputs()[0].name: x}})[0])\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert np.array_equal(np.load(tmp_path / "y.npy"), expected)
