"""Running the installed `bnn2onnx` console script as users run it: a subprocess with a plain environment and a
wide terminal (so report lines are not wrapped)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CLI = Path(sys.executable).parent / "bnn2onnx"


def run_cli(*args: str, columns: int = 200) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=600, check=False,
                          env={"COLUMNS": str(columns), "PATH": "/usr/bin:/bin"})
