"""The ops under the fuzzer (tests/fuzz/): every saved regression case, then a short seeded run of generated
models against the AddressSanitizer + UBSan build. A failure is a mismatch with the numpy reference, a case the
contract forbids that ran anyway, a crash, a hang or a sanitizer report (tests/fuzz/harness.py); each names its
case, which `python tests/fuzz/run.py --models 1 --start N --seed S --sanitize` replays."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
import session_report
from fuzz.cases import generate
from fuzz.harness import run_all, summary
from library_builds import sanitizer_build, sanitizer_environment

REGRESSIONS = sorted((Path(__file__).resolve().parent / "fuzz" / "regressions").glob("*.json"))
SEED = int(os.environ.get("BNN2ONNX_FUZZ_SEED", "0"))
MODELS = int(os.environ.get("BNN2ONNX_FUZZ_MODELS", "1500"))


@pytest.fixture(scope="module")
def sanitized() -> dict[str, str]:
    return sanitizer_environment(sanitizer_build())


def _replay(environment: dict[str, str]) -> list[str]:
    specs = [json.loads(path.read_text()) for path in REGRESSIONS]
    return [f"{path.name}: {result.outcome}: {result.detail}"
            for path, result in zip(REGRESSIONS, run_all(specs, environment), strict=True) if result.failed]


def test_regression_cases_hold_in_the_installed_library() -> None:
    assert REGRESSIONS
    assert _replay(dict(os.environ)) == []


def test_regression_cases_hold_under_sanitizers(sanitized: dict[str, str]) -> None:
    assert _replay(sanitized) == []


def test_seeded_fuzz_run_under_sanitizers(sanitized: dict[str, str]) -> None:
    counts: Counter = Counter()
    failures = []
    for index, result in enumerate(run_all((generate(SEED, i) for i in range(MODELS)), sanitized)):
        counts[result.outcome] += 1
        if result.failed:
            failures.append(f"model {index} (seed {SEED}): {result.outcome}: {result.detail}")
    session_report.add(f"fuzz, {MODELS} models (seed {SEED}) against the ASan+UBSan build: {summary(counts)}")
    assert failures == []
    assert counts["match"] > MODELS // 4, f"too few valid cases checked against the reference: {summary(counts)}"
