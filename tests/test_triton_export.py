"""`bnn2onnx export-triton`: the repository entry's config.pbtxt parsed as Triton's own ModelConfig (the message
tritonclient ships), checked against the model, and the entry's model and library run in onnxruntime."""

from __future__ import annotations

import filecmp
import importlib.util
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from cli_runner import run_cli
from google.protobuf import text_format
from onnx import TensorProto, helper

import bnn2onnx
from bnn2onnx.ops import schema
from bnn2onnx.runtime import LIBRARY_NAME

ROOT = Path(__file__).resolve().parent.parent


def _model_config_module():
    """tritonclient's generated model_config_pb2, loaded alone: the package's __init__ needs its gRPC stack."""
    spec = importlib.util.find_spec("tritonclient")
    assert spec is not None, "tritonclient is not installed (requirements/no-deps.txt)"
    path = Path(spec.submodule_search_locations[0]) / "grpc" / "model_config_pb2.py"
    loaded = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("triton") / "digits.onnx"
    onnx.save(bnn2onnx.convert(str(ROOT / "models" / "digits_bnn.h5")), path)
    return path


def _fixed_batch_model(path: Path) -> Path:
    """A BitPack model with a fixed batch of 2 and an int32 output: no Triton batching, full dims."""
    node = schema.make_node("BitPack", ["x"], ["y"])
    graph = helper.make_graph([node], "fixed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4, 40])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, [2, 4, 40, 1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), schema.opset_import()]), path)
    return path


def _parse(entry: Path):
    return text_format.Parse((entry / "config.pbtxt").read_text(), _model_config_module().ModelConfig())


def test_entry_config_matches_the_model_and_its_files_run(digits_model: Path, tmp_path: Path) -> None:
    result = run_cli("export-triton", str(digits_model), str(tmp_path), "--max-batch-size", "8", "--instances", "2")
    assert result.returncode == 0, result.stderr
    entry = tmp_path / "digits"
    config = _parse(entry)
    model_config = _model_config_module()
    assert (config.name, config.backend, config.max_batch_size) == ("digits", "onnxruntime", 8)
    assert [(t.name, model_config.DataType.Name(t.data_type), list(t.dims)) for t in config.input] == \
        [("image", "TYPE_FP32", [8, 8, 1])]
    assert [(t.name, model_config.DataType.Name(t.data_type), list(t.dims)) for t in config.output] == \
        [("float_classifier", "TYPE_FP32", [10])]
    assert [(g.kind, g.count) for g in config.instance_group] == [(model_config.ModelInstanceGroup.KIND_CPU, 2)]
    assert list(config.model_operations.op_library_filename) == [f"/models/digits/{LIBRARY_NAME}"]
    assert filecmp.cmp(entry / LIBRARY_NAME, bnn2onnx.library_path(), shallow=False)
    # The entry's own model and library, as the server's onnxruntime backend would load them.
    options = ort.SessionOptions()
    options.register_custom_ops_library(str(entry / LIBRARY_NAME))
    x = np.random.default_rng(0).standard_normal((3, 8, 8, 1)).astype(np.float32)
    got = ort.InferenceSession(str(entry / "1" / "model.onnx"), options).run(None, {"image": x})[0]
    np.testing.assert_array_equal(got, bnn2onnx.inference_session(digits_model).run(None, {"image": x})[0])


def test_fixed_batch_model_keeps_its_full_dims(tmp_path: Path) -> None:
    model = _fixed_batch_model(tmp_path / "fixed.onnx")
    repository = tmp_path / "repo"
    repository.mkdir()
    result = run_cli("export-triton", str(model), str(repository), "--name", "packer",
                     "--repository-in-server", "/srv/models/")
    assert result.returncode == 0, result.stderr
    config = _parse(repository / "packer")
    assert config.max_batch_size == 0
    assert [list(t.dims) for t in config.input] == [[2, 3, 4, 40]] and [list(t.dims) for t in config.output] == \
        [[2, 4, 40, 1]]
    assert _model_config_module().DataType.Name(config.output[0].data_type) == "TYPE_INT32"
    assert list(config.model_operations.op_library_filename) == [f"/srv/models/packer/{LIBRARY_NAME}"]


def test_refusals_leave_no_partial_entry(digits_model: Path, tmp_path: Path) -> None:
    missing = run_cli("export-triton", str(digits_model), str(tmp_path / "none"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert run_cli("export-triton", str(digits_model), str(tmp_path)).returncode == 0
    again = run_cli("export-triton", str(digits_model), str(tmp_path))
    assert again.returncode == 2 and "exists" in again.stderr
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a model")
    broken = run_cli("export-triton", str(corrupt), str(tmp_path))
    assert broken.returncode == 2 and broken.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.onnx", "digits"]
