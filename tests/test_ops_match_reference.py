"""Every op in onnxruntime (C++ kernels) against the numpy reference, and the reference against an independent
standard-op float computation, on random cases (BNN2ONNX_CASES per op, default 500; BNN2ONNX_SEED to replay).

Each case runs the C++ op with 1 and 2 intra-op threads (results must be identical) and with the kernel ISA
capped at AVX2 and at portable (each must agree with the default: AVX-512 or AVX2 where the CPU has them).
Packed outputs must match bit for bit; float outputs to 1e-5 relative.
"""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest
from op_cases import CASE_GENERATORS, REQUIRED_FEATURES
from ort_helpers import run

CASES_PER_OP = int(os.environ.get("BNN2ONNX_CASES", "500"))
SEED = int(os.environ.get("BNN2ONNX_SEED", str(np.random.SeedSequence().entropy % 2**32)))


def assert_same(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if expected.dtype == np.int32:
        mismatched = np.flatnonzero(actual != expected)
        assert mismatched.size == 0, f"{what}: {mismatched.size} packed words differ, first at {mismatched[0]}"
    else:
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6, err_msg=what)


@pytest.mark.parametrize("op", sorted(CASE_GENERATORS))
def test_op_matches_reference_and_reference_matches_float(op: str) -> None:
    rng = np.random.default_rng([SEED, zlib.crc32(op.encode())])
    covered: set[str] = set()
    for index in range(CASES_PER_OP):
        case = CASE_GENERATORS[op](rng)
        covered |= case.features
        where = f"{op} case {index} (BNN2ONNX_SEED={SEED}): {case.description}"

        independent = run(case.independent_model, case.independent_feeds, custom_ops=False)
        assert_same(case.independent_as_reference(independent), case.expected, "reference vs float ops; " + where)

        one_thread = run(case.model, case.feeds, threads=1)
        assert_same(one_thread, case.expected, "C++ vs reference; " + where)
        two_threads = run(case.model, case.feeds, threads=2)
        assert np.array_equal(one_thread, two_threads, equal_nan=True), "1 vs 2 threads differ; " + where
        for isa in ("avx2", "portable"):
            capped = run(case.model, case.feeds, threads=2, isa=isa)
            assert np.array_equal(one_thread, capped, equal_nan=True), f"{isa} vs default kernel; " + where
    if CASES_PER_OP >= 100:
        missing = REQUIRED_FEATURES[op] - covered
        assert not missing, f"{CASES_PER_OP} random cases (BNN2ONNX_SEED={SEED}) never covered {sorted(missing)}"
