"""The op tests (every op against the numpy reference, NEON and portable kernels, 1 and 2 threads) and the
malformed-model tests on aarch64 and armv7, under qemu user-mode emulation, the two architectures side by side
(tests/arm/emulated.py: cross-built library, Debian trixie's Python and onnxruntime 1.21).
BNN2ONNX_ARM_CASES sets the cases per op (default 500)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import session_report

sys.path.insert(0, str(Path(__file__).resolve().parent / "arm"))

import emulated

CASES = os.environ.get("BNN2ONNX_ARM_CASES", "500")
TIMEOUT = 1500


def test_ops_on_arm_under_emulation() -> None:
    runs = {}
    for arch in emulated.ARCHITECTURES:
        argv, environment = emulated.command(arch, emulated.TESTS)
        runs[arch] = subprocess.Popen(argv, env={**environment, "BNN2ONNX_CASES": CASES}, cwd=emulated.ROOT,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    outputs = {arch: run.communicate(timeout=TIMEOUT)[0] for arch, run in runs.items()}
    for arch, output in outputs.items():
        assert runs[arch].returncode == 0, f"{arch}:\n{output[-5000:]}"
        passed = re.search(r"(\d+) passed", output)
        tiers = next(line for line in output.splitlines() if line.startswith("kernel tiers run against"))
        skipped = [line for line in output.splitlines() if "cases skip optional inputs" in line]
        session_report.add(f"{arch} under qemu, onnxruntime 1.21, {CASES} cases per op: {passed.group(1)} tests "
                           f"passed; {tiers.removeprefix('kernel tiers run against the reference on ')}"
                           + "".join(f"; {line}" for line in skipped))
