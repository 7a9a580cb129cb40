"""Runs fuzz cases in worker processes (worker.py) and classifies what each case did, including what a worker
cannot report itself:
  crash      the worker died from a signal or exited without answering              (a failure)
  sanitizer  AddressSanitizer or UBSan reported (exit code 86, or a report on stderr) (a failure)
  hang       no answer within the time limit; the worker is killed                  (a failure)
A worker is restarted after each of these, so one bad case costs one case. Failing cases are minimised (sizes and
attributes shrunk while the same failure persists) and can be saved as regression specs.
"""

from __future__ import annotations

import copy
import json
import os
import select
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fuzz.cases import Spec

WORKER = Path(__file__).resolve().parent / "worker.py"
FAILURES = frozenset({"mismatch", "accepted_invalid", "crash", "sanitizer", "hang"})
SANITIZER_EXIT = 86


@dataclass
class Result:
    spec: Spec
    outcome: str
    detail: str

    @property
    def failed(self) -> bool:
        return self.outcome in FAILURES


class Worker:
    """One worker process, restarted after a crash or a hang."""

    def __init__(self, environment: dict[str, str], timeout: float) -> None:
        self.environment, self.timeout = environment, timeout
        self.process: subprocess.Popen | None = None
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (kept open across restarts; closed by close())

    def _start(self) -> subprocess.Popen:
        self.stderr.seek(0), self.stderr.truncate()
        return subprocess.Popen([sys.executable, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=self.stderr, env=self.environment, text=True, bufsize=1)

    def _stderr_tail(self) -> str:
        self.stderr.seek(0)
        lines = self.stderr.read().decode(errors="replace").strip().splitlines()
        reports = [line for line in lines if "ERROR: AddressSanitizer" in line or "runtime error:" in line]
        return (reports or lines or [""])[-1][:300]

    def run(self, spec: Spec) -> Result:
        if self.process is None or self.process.poll() is not None:
            self.process = self._start()
        process = self.process
        try:
            process.stdin.write(json.dumps(spec) + "\n")
            process.stdin.flush()
        except BrokenPipeError:
            pass
        ready, _, _ = select.select([process.stdout], [], [], self.timeout)
        line = process.stdout.readline() if ready else ""
        if line:
            answer = json.loads(line)
            return Result(spec, answer["outcome"], answer["detail"])
        if not ready:
            process.kill()
            process.wait()
            self.process = None
            return Result(spec, "hang", f"no answer in {self.timeout:.0f} s")
        code = process.wait()
        self.process = None
        tail = self._stderr_tail()
        if code == SANITIZER_EXIT or "Sanitizer" in tail or "runtime error:" in tail:
            return Result(spec, "sanitizer", tail)
        return Result(spec, "crash", f"exit code {code}: {tail}")

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait()
        self.stderr.close()


def run_all(specs: Iterable[Spec], environment: dict[str, str] | None = None, workers: int = 2,
            timeout: float = 20.0) -> Iterator[Result]:
    """Each spec's result, in order, from `workers` worker processes."""
    environment = dict(environment or os.environ)
    pool = [Worker(environment, timeout) for _ in range(workers)]
    free = list(pool)

    def run_one(spec: Spec) -> Result:
        worker = free.pop()
        try:
            return worker.run(spec)
        finally:
            free.append(worker)

    try:
        with ThreadPoolExecutor(max_workers=workers) as executor:
            yield from executor.map(run_one, specs)
    finally:
        for worker in pool:
            worker.close()


def _smaller(spec: Spec) -> Iterator[Spec]:
    """Candidate specs one step simpler than `spec`: one input dimension or attribute value halved, set to 1 or
    0, or one optional input or attribute dropped; the ISA cap and threads made the defaults."""
    for key, simple in (("threads", 1), ("isa", "native")):
        if spec[key] != simple:
            yield {**copy.deepcopy(spec), key: simple}
    for i, tensor in enumerate(spec["inputs"]):
        for d, size in enumerate(tensor["shape"]):
            for smaller in sorted({size // 2, 1, 0} - {size}):
                candidate = copy.deepcopy(spec)
                candidate["inputs"][i]["shape"][d] = smaller
                yield candidate
    for name, value in spec["attributes"].items():
        values = value if isinstance(value, list) else [value]
        for k, v in enumerate(values):
            if isinstance(v, int) and abs(v) > 1:
                candidate = copy.deepcopy(spec)
                shrunk = candidate["attributes"][name]
                if isinstance(shrunk, list):
                    shrunk[k] = v // 2
                else:
                    candidate["attributes"][name] = v // 2
                yield candidate


def minimise(result: Result, environment: dict[str, str] | None = None, timeout: float = 20.0,
             budget: int = 200) -> Result:
    """A smaller spec that fails the same way (greedy: take the first smaller candidate that still does)."""
    best = result
    tries = 0
    improved = True
    while improved and tries < budget:
        improved = False
        for candidate in _smaller(best.spec):
            tries += 1
            again = next(run_all([candidate], environment, workers=1, timeout=timeout))
            if again.outcome == best.outcome:
                best, improved = again, True
                break
            if tries >= budget:
                break
    return best


def summary(counts: Counter) -> str:
    order = ["match", "unchecked", "error", "refused_valid", "too_large", "unbuildable", *sorted(FAILURES)]
    return ", ".join(f"{name} {counts.get(name, 0)}" for name in order)
