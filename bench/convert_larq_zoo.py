"""Conversion of larq_zoo models through the user's path: each model (weights=None, batch-norm statistics
randomized) is saved as .keras, then `bnn2onnx convert --trust-lambda` (the models are built here, so their Lambda
layers are trusted) runs on it in a fresh process; its wall time and peak RSS (the process's own maximum resident
set, from the OS), the sizes, the binary layers against the layers with binary input and kernel quantizers, and
the verification verdict are printed. A model whose saved file Keras itself cannot reload (MeliusNet22: a Lambda
closing over a function) is converted from the function that builds it (`bnn2onnx convert
bench/convert_larq_zoo.py:build_model --kwargs ...`), and the row says so.

    python bench/convert_larq_zoo.py [MODEL ...]      (default: every model larq_zoo builds)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def zoo_models() -> list[str]:
    sys.path.insert(0, str(ROOT / "tests"))
    import keras_models  # noqa: F401  (first: it sets up legacy Keras for larq)

    # isort: split
    import larq_zoo

    return [f"{family}.{name}" for family in ("literature", "sota")
            for name in dir(getattr(larq_zoo, family)) if name[0].isupper()]


def binary_quantizer(quantizer: object) -> bool:
    return quantizer is not None and getattr(quantizer, "precision", None) == 1


def build_model(qualified: str):
    """The model with weights=None and randomized batch-norm statistics (also the factory the CLI calls)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from keras_models import randomize_batch_norms  # first: it sets up legacy Keras for larq

    # isort: split
    import larq_zoo

    family, name = qualified.split(".")
    return randomize_batch_norms(getattr(getattr(larq_zoo, family), name)(weights=None, input_shape=(224, 224, 3)))


def save_model(qualified: str, path: Path) -> None:
    """Saves the model; prints how many of its layers have binary input and kernel quantizers, and whether Keras
    reloads the file (a Lambda layer that closes over a function, as MeliusNet's does, does not survive saving)."""
    from bnn2onnx.frontends.keras import tensorflow_for_larq

    model = build_model(qualified)
    model.save(path)
    try:
        tensorflow_for_larq().keras.models.load_model(path, compile=False, safe_mode=False)
        reloads = "reloads"
    except Exception:  # noqa: BLE001 (Keras raises many types; any of them means the file does not reload)
        reloads = "does-not-reload"
    print(sum(1 for layer in model.submodules if binary_quantizer(getattr(layer, "input_quantizer", None))
              and binary_quantizer(getattr(layer, "kernel_quantizer", None) or
                                   getattr(layer, "depthwise_quantizer", None))), reloads)


def timed(command: list[str], tmp: Path) -> tuple[float, float, str, str]:
    """(seconds, peak RSS in GiB of that process itself, stdout, stderr)."""
    start = time.perf_counter()
    with open(tmp / "stdout", "w+") as out, open(tmp / "stderr", "w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env={**os.environ, "COLUMNS": "400"})
        _, _, usage = os.wait4(process.pid, 0)  # this process's own peak, not the largest child's
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        return seconds, usage.ru_maxrss / 2**20, out.read(), err.read()


def main(names: list[str]) -> None:
    cli = Path(sys.executable).parent / "bnn2onnx"
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        for name in names:
            source, output = tmp / f"{name}.keras", tmp / f"{name}.onnx"
            saved = subprocess.run([sys.executable, __file__, "--save", name, str(source)], check=True,
                                   stderr=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
            expected_binary, reloads = saved.stdout.split()[-2:]
            if reloads == "reloads":
                path = ".keras file"
                command = [str(cli), "convert", str(source), "-o", str(output), "--trust-lambda"]
            else:
                path = "factory"
                command = [str(cli), "convert", f"{__file__}:build_model", "--kwargs", json.dumps({"qualified": name}),
                           "-o", str(output)]
            seconds, peak_gib, stdout, stderr = timed(command, tmp)
            verdict = next((line for line in stdout.splitlines() if line.startswith("verification")),
                           stderr.strip().splitlines()[-1] if stderr.strip() else "")
            size = output.stat().st_size / 2**20 if output.exists() else float("nan")
            converted_binary = re.search(r"(\d+) binary layers", stdout)
            binary = f"{converted_binary.group(1) if converted_binary else '-'}/{expected_binary}"
            print(f"{name:34s} {path:12s} {seconds:6.1f} s  peak RSS {peak_gib:5.2f} GiB  .keras "
                  f"{source.stat().st_size / 2**20:7.1f} MiB  converted {size:6.2f} MiB  binary layers {binary:7s} "
                  f"{verdict}", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--save"]:
        save_model(sys.argv[2], Path(sys.argv[3]))
    else:
        main(sys.argv[1:] or zoo_models())
