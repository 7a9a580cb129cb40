"""Conversion cost of larq_zoo models through the user's path: each model (weights=None, batch-norm statistics
randomized) is saved as .keras, then `bnn2onnx convert` runs on it in a fresh process; its wall time and peak RSS
(the process's own maximum resident set, from the OS) are printed with the sizes and the verification verdict.

    python bench/convert_larq_zoo.py [MODEL ...]      (default: the six of the converter issue)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_MODELS = ("QuickNet", "QuickNetSmall", "BiRealNet", "BinaryAlexNet", "XNORNet", "BinaryDenseNet28")
ROOT = Path(__file__).resolve().parent.parent


def save_model(name: str, path: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from keras_models import randomize_batch_norms  # first: it sets up legacy Keras for larq

    # isort: split
    import larq_zoo

    factory = getattr(larq_zoo.literature, name, None) or getattr(larq_zoo.sota, name)
    randomize_batch_norms(factory(weights=None, input_shape=(224, 224, 3))).save(path)


def main(names: list[str]) -> None:
    cli = Path(sys.executable).parent / "bnn2onnx"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            source, output = Path(tmp) / f"{name}.keras", Path(tmp) / f"{name}.onnx"
            subprocess.run([sys.executable, __file__, "--save", name, str(source)], check=True,
                           stderr=subprocess.DEVNULL)
            start = time.perf_counter()
            with open(Path(tmp) / "stdout", "w+") as out, open(Path(tmp) / "stderr", "w+") as err:
                process = subprocess.Popen([str(cli), "convert", str(source), "-o", str(output)], stdout=out,
                                           stderr=err, env={**os.environ, "COLUMNS": "400"})
                _, _, usage = os.wait4(process.pid, 0)  # this process's own peak, not the largest child's
                seconds = time.perf_counter() - start
                out.seek(0)
                err.seek(0)
                stdout, stderr = out.read(), err.read()
            peak_gib = usage.ru_maxrss / 2**20
            verdict = next((line for line in stdout.splitlines() if line.startswith("verification")),
                           stderr.strip().splitlines()[-1] if stderr.strip() else "")
            size = output.stat().st_size / 2**20 if output.exists() else float("nan")
            rows.append((name, seconds, peak_gib, source.stat().st_size / 2**20, size, verdict))
            print(f"{name:18s} {seconds:6.1f} s  peak RSS {peak_gib:5.2f} GiB  .keras {rows[-1][3]:7.1f} MiB  "
                  f"converted {size:6.2f} MiB  {verdict}", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--save"]:
        save_model(sys.argv[2], Path(sys.argv[3]))
    else:
        main(sys.argv[1:] or list(DEFAULT_MODELS))
