"""The README's quick start, run literally: its shell commands through the installed console script and its
Python block, in a directory laid out like the repository's root (whose bnn2onnx source package, first on
sys.path there, has no compiled library: the installed one is found)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from cli_runner import CLI

ROOT = Path(__file__).resolve().parent.parent


def quick_start() -> tuple[list[str], str]:
    """(the section's `bnn2onnx ...` command lines, its Python block)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = [line.strip() for line in section.splitlines() if line.startswith("    bnn2onnx ")]
    python = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    return commands, python


def test_the_quick_start_runs_as_written(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "digits_bnn.h5").symlink_to(ROOT / "models" / "digits_bnn.h5")
    (tmp_path / "bnn2onnx").symlink_to(ROOT / "bnn2onnx")
    commands, python = quick_start()
    assert [c.split()[1] for c in commands] == ["convert", "inspect", "bench"]
    for command in commands:
        result = subprocess.run([str(CLI), *command.split()[1:]], cwd=tmp_path, capture_output=True, text=True,
                                timeout=600, check=False)
        assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
    result = subprocess.run([sys.executable, "-c", python], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    predictions = re.fullmatch(r"\[([0-9 ]+)\]", result.stdout.strip())
    assert predictions and len(predictions.group(1).split()) == 4, result.stdout
