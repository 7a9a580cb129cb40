"""Every op in onnxruntime (C++ kernels) against the numpy reference, and the reference against an independent
standard-op float computation, on random cases (BNN2ONNX_CASES per op, default 500; BNN2ONNX_SEED to replay).

Each case runs the C++ op with 1 and 2 intra-op threads (results must be identical) and with the kernel ISA
capped at each lower tier (x86: AVX-512 without vpopcntd, AVX2, portable; ARM: portable), and with the implicit
GEMM on the other kernels (each must agree with the default: the best the CPU has; a cap above it runs the CPU's
best): kernel_tiers.py. The run's summary says which tiers ran and which this CPU cannot run.
Packed outputs must match bit for bit; float outputs to 1e-5 relative.
"""

from __future__ import annotations

import os
import platform
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import session_report
from kernel_tiers import CAPPED_KERNELS, TIERS, tier_for, tiers_not_on_this_cpu
from onnx import TensorProto, helper, numpy_helper
from op_cases import CASE_GENERATORS, REQUIRED_FEATURES, random_float, random_signs
from ort_helpers import CRASHES_ON_SKIPPED_INPUTS, run, session, skips_inputs

from bnn2onnx.ops import reference, schema
from bnn2onnx.ops.bitpacking import pack_conv_weights

CASES_PER_OP = int(os.environ.get("BNN2ONNX_CASES", "500"))
SEED = int(os.environ.get("BNN2ONNX_SEED", str(np.random.SeedSequence().entropy % 2**32)))



def report_tiers() -> None:
    ran = sorted({tier_for(None)} | {tier_for(isa) for isa, _ in CAPPED_KERNELS}, key=list(TIERS).index)
    implicit = sorted({tier_for(isa) for isa, implicit in CAPPED_KERNELS if implicit}, key=list(TIERS).index)
    missing = tiers_not_on_this_cpu()
    session_report.add(f"kernel tiers run against the reference on {platform.machine()}: {', '.join(ran)} (the "
                       f"implicit GEMM also with {' and '.join(implicit)} kernels); not run, this CPU lacks them: "
                       f"{', '.join(missing) or 'none'}")


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
    ran = not_runnable = 0
    while ran < CASES_PER_OP:
        index = ran + not_runnable
        case = CASE_GENERATORS[op](rng)
        if CRASHES_ON_SKIPPED_INPUTS and skips_inputs(case.model):
            not_runnable += 1
            continue
        ran += 1
        covered |= case.features
        where = f"{op} case {index} (BNN2ONNX_SEED={SEED}): {case.description}"

        independent = run(case.independent_model, case.independent_feeds, custom_ops=False)
        assert_same(case.independent_as_reference(independent), case.expected, "reference vs float ops; " + where)

        one_thread = session(case.model, threads=1).run(None, case.feeds)
        assert_same(one_thread[0], case.expected, "C++ vs reference; " + where)
        if case.expected_signs is not None:
            assert_same(one_thread[1], case.expected_signs, "C++ signs output vs reference; " + where)
        others = {"2 threads": session(case.model, threads=2).run(None, case.feeds)}
        for isa, implicit_gemm in CAPPED_KERNELS:
            what = f"{isa}{' with the implicit GEMM' * implicit_gemm}"
            others[what] = session(case.model, threads=2, isa=isa, implicit_gemm=implicit_gemm).run(None, case.feeds)
        for what, outputs in others.items():
            for index, (expected, actual) in enumerate(zip(one_thread, outputs, strict=True)):
                assert np.array_equal(expected, actual, equal_nan=True), f"output {index}, {what} vs 1 thread; " + where
    report_tiers()
    if not_runnable:
        session_report.add(f"{op}: {not_runnable} further cases skip optional inputs, which onnxruntime "
                           f"{ort.__version__} crashes on: not run")
    if CASES_PER_OP >= 100:
        missing = REQUIRED_FEATURES[op] - covered
        assert not missing, f"{CASES_PER_OP} random cases (BNN2ONNX_SEED={SEED}) never covered {sorted(missing)}"


def _conv_of_any_input_size(packed_output: int) -> tuple[onnx.ModelProto, Callable[[np.ndarray], np.ndarray]]:
    """A 24 -> 40 channel 3x3 BinaryConv2D whose input height and width are left open, and its reference."""
    rng = np.random.default_rng(7)
    weights = pack_conv_weights(random_signs(rng, (40, 24, 3, 3)))
    first, second = ((np.zeros(40, np.int32), np.ones(40, np.int32)) if packed_output
                     else (np.ones(40, np.float32), np.zeros(40, np.float32)))
    node = schema.make_node(schema.BINARY_CONV2D, ["x", "w", "first", "second"], ["y"], channels_in=24,
                            pads=[1, 1, 1, 1], packed_output=packed_output)
    graph = helper.make_graph(
        [node], "sizes", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 24, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.INT32 if packed_output else TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in {"w": weights, "first": first, "second": second}.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), schema.opset_import()])
    return model, partial(reference.binary_conv2d, weights=weights, first=first, second=second, channels_in=24,
                          pads=(1, 1, 1, 1), packed_output=packed_output)


@pytest.mark.parametrize("packed_output", [0, 1])
def test_conv_session_follows_changing_input_sizes(packed_output: int) -> None:
    """One session run at several input sizes (the kernel keeps per-size border tables between runs): each run
    matches the reference for its own size."""
    model, expected_of = _conv_of_any_input_size(packed_output)
    one_session = session(model)
    rng = np.random.default_rng(8)
    for height, width in [(9, 7), (4, 11), (9, 7), (1, 1)]:
        x = random_float(rng, (1, 24, height, width))
        assert_same(one_session.run(None, {"x": x})[0], expected_of(x), f"input {height}x{width}")


def test_one_session_serves_several_threads_at_once() -> None:
    """A server runs one session from many threads: onnxruntime lets runs overlap, and each thread here keeps
    switching input sizes, so the kernel's per-size tables are replaced while other runs still use theirs. Every
    run matches the reference. (Without the tables' lock, runs used another size's tables or crashed in 6 of 9
    runs of this test.)"""
    model, expected_of = _conv_of_any_input_size(packed_output=0)
    shared = session(model, threads=2)
    rng = np.random.default_rng(9)
    inputs = [random_float(rng, (1, 24, height, width)) for height, width in [(9, 7), (4, 11), (28, 28), (1, 1)]]
    expected = [expected_of(x) for x in inputs]
    turns = 600

    def serve(worker: int) -> int:
        for turn in range(turns):
            size = (worker + turn) % len(inputs)
            assert_same(shared.run(None, {"x": inputs[size]})[0], expected[size], f"thread {worker}, turn {turn}")
        return turns

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(serve, range(4))) == [turns] * 4


def assert_conv_tiers_match_reference(x: np.ndarray, weights: np.ndarray, first: np.ndarray, second: np.ndarray,
                                      channels_in: int, packed_output: int, **attributes: object) -> None:
    """BinaryConv2D of x with these weights and output parameters agrees with the reference on every kernel tier."""
    node = schema.make_node(schema.BINARY_CONV2D, ["x", "w", "first", "second"], ["y"], channels_in=channels_in,
                            packed_output=packed_output, **attributes)
    graph = helper.make_graph(
        [node], "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.INT32 if packed_output else TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in {"w": weights, "first": first, "second": second}.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), schema.opset_import()])
    expected = reference.binary_conv2d(x, weights=weights, first=first, second=second, channels_in=channels_in,
                                       packed_output=packed_output, **attributes)
    for isa, implicit_gemm in ((None, False), *CAPPED_KERNELS):
        actual = session(model, isa=isa, implicit_gemm=implicit_gemm).run(None, {"x": x})[0]
        assert_same(actual, expected, f"kernels capped at {isa}{' with the implicit GEMM' * implicit_gemm}")


@pytest.mark.parametrize("packed_output", [0, 1])
def test_conv_with_fields_of_over_2_16_bits_matches_the_reference(packed_output: int) -> None:
    """A receptive field of 70,000 bits: the AVX2 kernel's 16-bit counters are widened to 32 bits mid-field (every
    65,520 bits), which the random cases' fields never reach. 70 filters and 7 pixels leave partial tiles on both
    sides. Every kernel tier agrees with the reference."""
    rng = np.random.default_rng(11)
    channels_in, filters = 70_000, 70
    weights = pack_conv_weights(random_signs(rng, (filters, channels_in, 1, 1)))
    first, second = ((rng.integers(-60, 60, filters).astype(np.int32), rng.integers(-1, 2, filters).astype(np.int32))
                     if packed_output else (random_float(rng, (filters,)), random_float(rng, (filters,))))
    assert_conv_tiers_match_reference(random_float(rng, (1, channels_in, 1, 7)), weights, first, second, channels_in,
                                      packed_output)


@pytest.mark.parametrize("packed_output", [0, 1])
def test_conv_with_dots_beyond_16_bits_matches_the_reference(packed_output: int) -> None:
    """A 33,300-bit receptive field (3700 channels, 3x3, padded) where the first filters match the input's signs,
    or their opposites, at every tap: dots near +-33,300, beyond 16 bits. The AVX2 kernel keeps a field's dots in
    16 bits only when every possible dot fits (fields of at most 32,767 bits). 64 filters against 8x8 pixels:
    filters as rows for float output, as columns for packed output. Every kernel tier agrees with the reference."""
    rng = np.random.default_rng(13)
    channels_in, filters, size = 3700, 64, 8
    signs = random_signs(rng, (channels_in,))
    w = random_signs(rng, (filters, channels_in, 3, 3))
    w[:4] = signs[:, None, None] * np.array([1, -1, 1, -1], np.float32)[:, None, None, None]
    x = (signs[:, None, None] * (0.5 + rng.random((channels_in, size, size)))).astype(np.float32)[None]
    if packed_output:  # thresholds among the large dots
        first = rng.integers(-33_300, 33_300, filters).astype(np.int32)
        second = rng.integers(-1, 2, filters).astype(np.int32)
    else:
        first, second = random_float(rng, (filters,)), random_float(rng, (filters,))
    assert_conv_tiers_match_reference(x, pack_conv_weights(w), first, second, channels_in, packed_output,
                                      pads=[1, 1, 1, 1])


@pytest.mark.parametrize("size, filters", [(16, 64), (9, 96)])
def test_packed_conv_with_thresholds_beyond_16_bits_matches_the_reference(size: int, filters: int) -> None:
    """Thresholds far outside a 576-bit field's dots, up to the int32 limits, with filters as rows (16x16 pixels:
    one threshold per row) and as columns (9x9: per column): the AVX2 kernel compares such fields' dots in 16 bits,
    so it saturates the thresholds (a wrapped one would flip outputs). Padding adds the border kinds' offsets to
    those 16-bit dots. Every kernel tier agrees with the reference."""
    rng = np.random.default_rng(12)
    channels_in = 64
    weights = pack_conv_weights(random_signs(rng, (filters, channels_in, 3, 3)))
    extremes = np.array([-2**31, -70_000, -40_000, -600, 600, 40_000, 70_000, 2**31 - 1], np.int64)
    thresholds = np.where(rng.random(filters) < 0.5, rng.choice(extremes, filters), rng.integers(-80, 80, filters))
    directions = rng.integers(-1, 2, filters)
    assert_conv_tiers_match_reference(random_float(rng, (1, channels_in, size, size)), weights,
                                      thresholds.astype(np.int32), directions.astype(np.int32), channels_in, 1,
                                      pads=[1, 1, 1, 1])


def test_maxpool_windows_over_an_empty_input_are_minus_one() -> None:
    """Windows that see no input (here: an input of width 0 padded to 2) give -1, max over nothing; the kernel
    visits only taps inside the input, so 2^16 + 1 windows of 2^16 rows each cost nothing (numpy's reference
    would loop over them for minutes, hence the direct check)."""
    node = schema.make_node(schema.BINARY_MAXPOOL2D, ["x"], ["y"], channels=3, kernel_shape=[2**16, 2],
                            pads=[0, 1, 0, 1])
    graph = helper.make_graph([node], "empty", [helper.make_tensor_value_info("x", TensorProto.INT32, None)],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), schema.opset_import()])
    y = run(model, {"x": np.zeros((1, 2**17, 0, 1), np.int32)})
    assert y.shape == (1, 2**16 + 1, 1, 1)
    assert np.all(y == 0b111)
