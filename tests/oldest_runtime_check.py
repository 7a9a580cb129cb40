"""Run inside the oldest supported onnxruntime (tests/test_oldest_onnxruntime.py): every op on random cases
against the numpy reference, and a converted model's outputs saved for comparison with the current runtime.

    python tests/oldest_runtime_check.py CASES_PER_OP MODEL.onnx INPUTS.npy OUTPUTS.npy

Cases whose node skips optional inputs (an empty input name) are left out: onnxruntime 1.23 and older crash creating a
session for such a custom-op node, and the converter never writes one (fuse_residual_add.py). Prints one line per
op with the count of cases that matched.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))

from op_cases import CASE_GENERATORS
from ort_helpers import skips_inputs

import bnn2onnx


def session(model: bytes) -> ort.InferenceSession:
    options = bnn2onnx.session_options(intra_op_num_threads=2)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def check_ops(cases: int) -> None:
    rng = np.random.default_rng(0)
    for op, generate in sorted(CASE_GENERATORS.items()):
        matched = 0
        while matched < cases:
            case = generate(rng)
            if skips_inputs(case.model):
                continue
            # onnx writes its newest IR version; the converter writes the lowest one (as here), which older
            # onnxruntime versions read.
            case.model.ir_version = onnx.helper.find_min_ir_version_for(list(case.model.opset_import), True)
            actual = session(case.model.SerializeToString()).run(None, case.feeds)[0]
            if case.expected.dtype == np.int32:
                assert np.array_equal(actual, case.expected), f"{op}: {case.description}"
            else:
                np.testing.assert_allclose(actual, case.expected, rtol=1e-5, atol=1e-6, err_msg=case.description)
            matched += 1
        print(f"onnxruntime {ort.__version__}: {op} matched the reference on {matched} cases", flush=True)


def main() -> None:
    cases, model, inputs, outputs = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    check_ops(cases)
    converted = session(Path(model).read_bytes())
    np.save(outputs, converted.run(None, {converted.get_inputs()[0].name: np.load(inputs)})[0])


if __name__ == "__main__":
    main()
