"""The README's demo runs and reports exact agreement with the reference."""

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_binary_layers_demo_agrees_with_reference() -> None:
    result = subprocess.run([sys.executable, str(EXAMPLES / "binary_layers_demo.py")], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "thread(s)" in line]
    assert len(lines) == 2 and all("argmax agreement 100%" in line for line in lines), result.stdout
