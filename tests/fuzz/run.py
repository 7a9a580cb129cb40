"""Fuzzes the bnn2onnx ops: generates models (cases.py), runs them in worker processes against a build of the
library, prints the count of each outcome, and minimises and saves every failing case.

    python tests/fuzz/run.py --models 50000 --seed 1 --sanitize      # the long run, ASan + UBSan build
    python tests/fuzz/run.py --models 2000 --library build/x/libbnn2onnx_ops.so

Failures are written to tests/fuzz/regressions/ (--save), where test_fuzz_ops.py replays them; the exit status is
1 when any case failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))

from fuzz.cases import generate
from fuzz.harness import minimise, run_all, summary
from library_builds import sanitizer_build, sanitizer_environment

REGRESSIONS = Path(__file__).resolve().parent / "regressions"


def save(spec: dict, outcome: str) -> Path:
    text = json.dumps(spec, indent=1, sort_keys=True)
    path = REGRESSIONS / f"{spec['op']}-{outcome}-{hashlib.sha256(text.encode()).hexdigest()[:10]}.json"
    path.write_text(text + "\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=1000, help="how many models to generate and run")
    parser.add_argument("--seed", type=int, default=0, help="the run's seed: the same seed gives the same models")
    parser.add_argument("--start", type=int, default=0, help="index of the first model (to split a run)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="worker processes")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds before a case counts as a hang")
    parser.add_argument("--sanitize", action="store_true", help="build and use the ASan + UBSan library")
    parser.add_argument("--library", type=Path, help="the library to fuzz (default: the installed one)")
    parser.add_argument("--save", action="store_true", help="write minimised failures to tests/fuzz/regressions")
    args = parser.parse_args()

    environment = dict(os.environ)
    if args.sanitize:
        environment = sanitizer_environment(sanitizer_build())
    elif args.library:
        environment["BNN2ONNX_LIBRARY"] = str(args.library.resolve())
    print(f"fuzzing {args.models} models from seed {args.seed}, index {args.start}, against "
          f"{environment.get('BNN2ONNX_LIBRARY', 'the installed library')}", flush=True)
    counts: Counter = Counter()
    failures = []
    began = time.monotonic()
    specs = (generate(args.seed, i) for i in range(args.start, args.start + args.models))
    for done, result in enumerate(run_all(specs, environment, args.workers, args.timeout), 1):
        counts[result.outcome] += 1
        if result.failed:
            failures.append(result)
            print(f"FAILED model {args.start + done - 1} (--seed {args.seed}): {result.outcome}: {result.detail}\n"
                  f"  {json.dumps(result.spec)}", flush=True)
        if done % 1000 == 0:
            print(f"{done} models, {time.monotonic() - began:.0f} s: {summary(counts)}", flush=True)
    print(f"{sum(counts.values())} models in {time.monotonic() - began:.0f} s: {summary(counts)}")
    # One minimised case per op and kind of failure: many failing cases usually share a cause.
    firsts = {(r.spec["op"], r.outcome): r for r in reversed(failures)}
    for result in firsts.values():
        small = minimise(result, environment, args.timeout)
        where = save(small.spec, small.outcome) if args.save else "(not saved)"
        print(f"minimised {small.outcome}: {small.detail}\n  {json.dumps(small.spec)} -> {where}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
