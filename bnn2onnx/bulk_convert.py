"""Converting many models at once (`bnn2onnx convert A B ... -o DIR/`, or `--manifest FILE`): each model in a
process of its own (`bnn2onnx convert SOURCE -o DIR/NAME.onnx`), so that one that fails, crashes or exhausts
memory does not stop the others, `jobs` at a time; each child writes a small JSON report that the summary reads."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bnn2onnx.errors import ConversionError
from bnn2onnx.frontends.python_factory import FACTORY, is_factory


@dataclass(frozen=True)
class BulkItem:
    source: str
    output: Path


@dataclass(frozen=True)
class BulkResult:
    item: BulkItem
    ok: bool
    seconds: float
    message: str  # the verification summary, or the child's error line
    binary_layers: int | None = None
    float_layers: int | None = None


def read_manifest(path: Path) -> list[str]:
    """Sources, one per line; blank lines and lines starting with # are skipped."""
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise ConversionError(f"cannot read manifest {path}: {error.strerror}") from error
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def output_name(source: str) -> str:
    """The output's file name: the source's file or folder name without its suffix, or a factory's function."""
    if is_factory(source):
        return FACTORY.match(source).group("function").replace(".", "_") + ".onnx"
    return Path(source.rstrip("/")).stem + ".onnx"


def plan(sources: Sequence[str], directory: Path) -> list[BulkItem]:
    """One output per source in `directory`, checked before any work: the folder exists, and no two sources
    would write the same file."""
    if not directory.is_dir():
        raise ConversionError(f"output directory {directory} does not exist")
    items = [BulkItem(source, directory / output_name(source)) for source in sources]
    seen: dict[Path, str] = {}
    for item in items:
        if item.output in seen:
            raise ConversionError(f"{seen[item.output]} and {item.source} would both write {item.output}; convert "
                                  "them in separate runs or rename one")
        seen[item.output] = item.source
    return items


def convert_one(item: BulkItem, options: Sequence[str], timeout: float | None) -> BulkResult:
    """Runs `bnn2onnx convert` on one source in a child process."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        command = [sys.executable, "-m", "bnn2onnx.cli", "convert", item.source, "-o", str(item.output),
                   "--report-json", str(report), *options]
        start = time.perf_counter()
        try:
            child = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return BulkResult(item, False, time.perf_counter() - start, f"stopped after {timeout:g} s")
        seconds = time.perf_counter() - start
        if child.returncode != 0 or not report.is_file():
            lines = [line for line in child.stderr.splitlines() if line.strip()]
            why = lines[-1].removeprefix("bnn2onnx: error: ") if lines else f"exit status {child.returncode}"
            return BulkResult(item, False, seconds, why)
        summary = json.loads(report.read_text())
    return BulkResult(item, True, seconds, summary["verification"], summary["binary_layers"],
                      summary["float_layers"])


def convert_all(items: Sequence[BulkItem], options: Sequence[str], jobs: int = 1, timeout: float | None = None,
                done: Callable[[BulkResult], None] = lambda result: None) -> list[BulkResult]:
    """Every item, `jobs` children at a time; `done` is called as each finishes. Results in the items' order."""
    def run(item: BulkItem) -> BulkResult:
        result = convert_one(item, options, timeout)
        done(result)
        return result

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(run, items))
