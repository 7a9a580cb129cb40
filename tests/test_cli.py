"""The bnn2onnx command line, run as users run it (the installed console script, in a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from cli_runner import run_cli

import bnn2onnx

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "models" / "digits_bnn.h5"


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("cli") / "digits.onnx"
    return out, run_cli("convert", str(DEMO), "-o", str(out))


def test_convert_reports_layers_sizes_and_verification(converted) -> None:
    out, result = converted
    assert result.returncode == 0, result.stderr
    assert "6 binary layers, 2 float layers" in result.stdout
    assert "float: input is not binarized" in result.stdout
    assert "verification: agree" in result.stdout and "size: source" in result.stdout
    model = onnx.load(out)
    onnx.checker.check_model(model)
    assert sum(n.op_type == "BinaryConv2D" for n in model.graph.node) == 5


def test_verify_accepts_the_converted_model_on_a_user_batch(converted, tmp_path: Path) -> None:
    out, _ = converted
    batch = tmp_path / "batch.npy"
    np.save(batch, np.random.default_rng(3).uniform(-1, 1, (20, 8, 8, 1)).astype(np.float32))
    result = run_cli("verify", str(DEMO), str(out), "--inputs", str(batch))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verification: agree" in result.stdout and "on 20 inputs" in result.stdout


def test_inspect_totals_match_larq_summary(converted) -> None:
    from bnn2onnx.frontends.keras import load_keras_model, tensorflow_for_larq
    from bnn2onnx.inspect_model import layer_rows

    tf = tensorflow_for_larq()
    from larq.models import ModelProfile

    out, _ = converted
    result = run_cli("inspect", str(out))
    assert result.returncode == 0 and "total" in result.stdout, result.stderr
    keras_model = load_keras_model(DEMO)
    profile = ModelProfile(keras_model)
    rows = layer_rows(onnx.load(out))
    assert sum(r.binary_params for r in rows) == profile.weight_count(bitwidth=1)
    assert sum(r.binary_macs for r in rows) == profile.op_count("mac", 1)
    assert sum(r.float_macs for r in rows) == profile.op_count("mac", 32)
    # tf2onnx folds a batch norm that follows a float conv into the conv: larq counts the norm's 2 x C
    # statistics (and the conv's C biases, if any); the folded conv carries just C biases.
    folded = 0
    for before, layer in zip(keras_model.layers, keras_model.layers[1:]):
        if isinstance(layer, tf.keras.layers.BatchNormalization) and type(before) is tf.keras.layers.Conv2D:
            channels = layer.output.shape[-1]
            folded += channels + (channels if before.use_bias else 0)
    assert sum(r.float_params for r in rows) == profile.weight_count(bitwidth=32) - folded


def test_inspect_fits_80_columns_without_cutting_a_name_or_a_number(converted) -> None:
    """Every layer's name (its Keras layer), op and counts appear whole in an 80-column terminal; the model's
    input keeps its Keras name and the batch dimension is called batch."""
    from bnn2onnx.inspect_model import compact, layer_rows, short_names

    out, _ = converted
    result = run_cli("inspect", str(out), columns=80)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "input image: batch×8×8×1 float32" in lines and "output float_classifier: batch×10 float32" in lines
    rows = layer_rows(onnx.load(out))
    names = short_names([r.name for r in rows])
    assert "binary_conv1" in names and "float_classifier" in names
    body = iter(lines)
    for name, row in zip(names, rows):
        line = next(line for line in body if line.startswith(name + " "))
        assert line.split()[:2] == [name, row.op], line
        assert compact(row.binary_params) in line.split() and compact(row.binary_macs) in line.split(), line
    wide = run_cli("inspect", str(out), "--wide")
    assert all(r.name in wide.stdout and f"{r.binary_macs:,}" in wide.stdout for r in rows)


def test_compact_counts_and_short_layer_names() -> None:
    from bnn2onnx.inspect_model import compact, short_names

    assert [compact(n) for n in (999, 1000, 13_824, 999_999, 1_327_104, 12_345_678_901)] == \
        ["999", "1k", "13.8k", "1M", "1.33M", "12.3G"]
    assert short_names(["net/conv1/QuantConv2D", "net/dense/MatMul", "net/dense/BiasAdd", "Transpose__9"]) == \
        ["net/conv1", "net/dense", "net/dense", "Transpose__9"]
    assert short_names(["net/conv1/QuantConv2D", "net/dense/MatMul"]) == ["conv1", "dense"]
    assert short_names(["/features/features.3/Conv", "/classifier/classifier.0/Gemm"]) == \
        ["features/features.3", "classifier/classifier.0"]


def test_bench_json_gives_latencies_node_shares_and_the_binary_ops_share(converted) -> None:
    out, _ = converted
    result = run_cli("bench", str(out), "--runs", "20", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["latency_ms"]["p50"] > 0 and report["profile_runs"] >= 200
    shares = {node["op"]: 0.0 for node in report["nodes"]}
    for node in report["nodes"]:
        shares[node["op"]] += node["share"]
    assert abs(sum(shares.values()) - 1) < 1e-9
    assert abs(report["binary_op_share"] - sum(v for op, v in shares.items() if op.startswith(("Binary", "Bit")))) \
        < 1e-9 and shares["BinaryConv2D"] > 0


def test_bench_prints_percentiles_and_node_profile(converted) -> None:
    out, _ = converted
    result = run_cli("bench", str(out), "--runs", "20", "--batch", "4", "--top", "3")
    assert result.returncode == 0, result.stderr
    assert "p50" in result.stdout and "p99" in result.stdout and "BinaryConv2D" in result.stdout


def test_bench_draws_the_node_profile_as_png(converted, tmp_path: Path) -> None:
    out, _ = converted
    chart = tmp_path / "profile.png"
    result = run_cli("bench", str(out), "--runs", "10", "--png", str(chart))
    assert result.returncode == 0, result.stderr
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and chart.stat().st_size > 5_000


def _unsupported_layer_model(path: Path) -> None:
    from bnn2onnx.frontends.keras import tensorflow_for_larq

    tf = tensorflow_for_larq()

    class Doubling(tf.keras.layers.Layer):  # a custom layer the converter cannot know
        def call(self, x):
            return 2 * x

    x = tf.keras.Input((4,))
    tf.keras.Model(x, Doubling()(x)).save(path)


@pytest.mark.parametrize("case", ["missing", "corrupt", "not_a_model", "unsupported_layer", "bad_output_name",
                                  "corrupt_onnx"])
def test_bad_input_gives_one_line_error_and_writes_nothing(case: str, tmp_path: Path) -> None:
    source = tmp_path / "model.h5"
    output = tmp_path / "out.onnx"
    expected = {"missing": "no such file", "corrupt": "cannot load as a Keras model",
                "not_a_model": "not a Keras model", "unsupported_layer": "Unknown layer",
                "bad_output_name": "must end in .onnx", "corrupt_onnx": "not a valid ONNX model"}[case]
    if case == "corrupt":
        source.write_bytes(np.random.default_rng(0).bytes(4096))
    elif case == "not_a_model":
        source = tmp_path / "notes.txt"
        source.write_text("not a model")
    elif case == "unsupported_layer":
        _unsupported_layer_model(source)
    elif case == "corrupt_onnx":
        source = tmp_path / "model.onnx"
        source.write_bytes(np.random.default_rng(1).bytes(4096))
    elif case == "bad_output_name":
        output = tmp_path / "out.txt"
        source = DEMO
    result = run_cli("convert", str(source), "-o", str(output))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bnn2onnx: error:") and expected in lines[0], result.stderr
    assert not output.exists() and not list(tmp_path.glob(".out*"))


def test_output_gets_the_umask_mode_or_keeps_the_replaced_files(converted, tmp_path: Path) -> None:
    """A new file gets the mode the umask gives (0644 with umask 022), a replaced one keeps its own; never the
    temporary file's 0600."""
    out, _ = converted
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
    replaced = tmp_path / "replaced.onnx"
    replaced.write_bytes(b"old")
    replaced.chmod(0o640)
    result = run_cli("convert", str(DEMO), "-o", str(replaced), "--no-verify")
    assert result.returncode == 0, result.stderr
    assert replaced.stat().st_mode & 0o777 == 0o640 and onnx.load(replaced).graph.node


@pytest.mark.parametrize("case", ["missing_directory", "unwritable_directory", "directory"])
def test_an_unusable_output_path_fails_before_the_conversion(case: str, tmp_path: Path) -> None:
    """Checked before the source is read (the source here does not even exist). /sys refuses new files even to
    root, which a test run as root needs: permission bits would not stop it."""
    output = {"missing_directory": tmp_path / "nowhere" / "out.onnx", "unwritable_directory": Path("/sys/out.onnx"),
              "directory": tmp_path / "dir.onnx"}[case]
    if case == "directory":
        output.mkdir()
    result = run_cli("convert", str(tmp_path / "missing-source.h5"), "-o", str(output))
    expected = {"missing_directory": f"output directory {output.parent} does not exist",
                "unwritable_directory": f"cannot write {output}: Permission denied",
                "directory": f"output {output} is a directory"}[case]
    assert result.returncode == 2 and expected in result.stderr, result.stderr


def test_lambda_model_converts_only_with_trust_lambda(tmp_path: Path) -> None:
    from keras_models import lambda_model

    source, out = tmp_path / "lambda.keras", tmp_path / "lambda.onnx"
    lambda_model().save(source)
    refused = run_cli("convert", str(source), "-o", str(out))
    assert refused.returncode != 0 and "--trust-lambda" in refused.stderr + refused.stdout
    assert not out.exists()
    trusted = run_cli("convert", str(source), "-o", str(out), "--trust-lambda")
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    assert "1 binary layers" in trusted.stdout and out.exists()


@pytest.mark.parametrize("function, kwargs, binary", [
    ("keras_models.py:function_binarizer", '{"seed": 3}', "2 binary layers"),
    ("torch_models.py:vgg_with_example_input", '{"width": 8}', "7 binary layers"),
])
def test_a_model_built_by_a_python_function_converts(function: str, kwargs: str, binary: str,
                                                      tmp_path: Path) -> None:
    """`file.py:function` with --kwargs: for models that only exist as code (Keras cannot reload some of its own)."""
    out = tmp_path / "built.onnx"
    result = run_cli("convert", str(ROOT / "tests" / function), "--kwargs", kwargs, "-o", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert binary in result.stdout and "verification: agree" in result.stdout and out.exists()


@pytest.mark.parametrize("source, kwargs, expected", [
    ("tests/keras_models.py:no_such_function", None, "tests/keras_models.py has no no_such_function"),
    ("no_such_package.models:build", None, "cannot import no_such_package.models: No module named"),
    ("tests/keras_models.py:lambda_model", "[1]", "--kwargs must be a JSON object"),
    ("tests/keras_models.py:lambda_model", '{"width": 3}', "lambda_model(**{'width': 3}) failed: TypeError"),
])
def test_a_bad_python_function_source_gives_one_line(source: str, kwargs: str | None, expected: str,
                                                     tmp_path: Path) -> None:
    out = tmp_path / "built.onnx"
    result = subprocess.run([str(Path(sys.executable).parent / "bnn2onnx"), "convert", source, "-o", str(out),
                             *(["--kwargs", kwargs] if kwargs else [])], cwd=ROOT, capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 2 and expected in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()


def test_version_and_debug_after_the_command() -> None:
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"bnn2onnx {bnn2onnx.__version__}"
    failed = run_cli("inspect", "/nonexistent.onnx", "--debug")
    assert failed.returncode != 0 and "Traceback" in failed.stderr and "ConversionError" in failed.stderr


@pytest.mark.parametrize("module, source, extra", [("larq", str(DEMO), "keras"), ("h5py", str(DEMO), "keras")])
def test_a_missing_extra_is_named_with_its_pip_command(module: str, source: str, extra: str, tmp_path: Path) -> None:
    """The extra's package made unimportable (sys.modules[name] = None) in the CLI's own process."""
    script = (f"import sys; sys.modules[{module!r}] = None; from bnn2onnx.cli import main; "
              f"sys.exit(main(['convert', {source!r}, '-o', {str(tmp_path / 'out.onnx')!r}]))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (f"bnn2onnx: error: converting a Keras model needs the {extra} extra ({module} "
                                     f'is missing): pip install "bnn2onnx[{extra}]"')


def test_many_models_convert_each_in_its_own_process_with_a_summary(tmp_path: Path) -> None:
    for name in ("first", "second"):
        (tmp_path / f"{name}.h5").write_bytes(DEMO.read_bytes())
    (tmp_path / "corrupt.h5").write_bytes(b"not a model")
    manifest = tmp_path / "models.txt"
    manifest.write_text(f"# the broken one\n{tmp_path / 'corrupt.h5'}\n\n{tmp_path / 'second.h5'}\n")
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli("convert", str(tmp_path / "first.h5"), "--manifest", str(manifest), "-o", f"{out}/",
                     "--jobs", "2")
    assert result.returncode == 1, result.stderr
    assert "2 of 3 converted" in result.stdout and "cannot load as a Keras model" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["first.onnx", "second.onnx"]
    x = np.random.default_rng(0).standard_normal((4, 8, 8, 1)).astype(np.float32)
    outputs = [bnn2onnx.inference_session(out / name).run(None, {"image": x})[0] for name in ("first.onnx",
                                                                                              "second.onnx")]
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_many_models_refuse_two_sources_for_one_output(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "model.h5").write_bytes(DEMO.read_bytes())
    result = run_cli("convert", str(tmp_path / "a" / "model.h5"), str(tmp_path / "b" / "model.h5"), "-o",
                     str(tmp_path))
    assert result.returncode == 2 and "would both write" in result.stderr
    assert not list(tmp_path.glob("*.onnx"))
