"""The shipped custom-op library: what it links and exports, how it meets an older onnxruntime, and the output
types and shapes it declares to onnxruntime at graph resolution."""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper
from ort_helpers import session

import bnn2onnx
from bnn2onnx.ops import schema
from bnn2onnx.ops.bitpacking import pack_bits


def test_library_does_not_link_onnxruntime() -> None:
    linked = subprocess.run(["ldd", str(bnn2onnx.library_path())], capture_output=True, text=True, check=True).stdout
    assert "onnxruntime" not in linked
    names = {line.split()[0] for line in linked.strip().splitlines()}
    allowed = re.compile(r"linux-vdso|ld-linux|libc\.so|libm\.so|libstdc\+\+|libgcc_s")
    assert all(allowed.search(name) for name in names), names


def test_library_exports_only_register_custom_ops() -> None:
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(bnn2onnx.library_path())], capture_output=True,
                             text=True, check=True).stdout.split()
    assert [s for s in symbols if not re.fullmatch(r"[0-9a-f]+|[A-Za-z]", s)] == ["RegisterCustomOps"]


# Pointers travel as integers (c_size_t): ctypes cannot return c_void_p from a callback cleanly.
GET_API = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_uint32)
GET_VERSION = ctypes.CFUNCTYPE(ctypes.c_size_t)
OLD_VERSION = ctypes.create_string_buffer(b"1.16.3")


class OrtApiBase(ctypes.Structure):
    _fields_ = [("GetApi", GET_API), ("GetVersionString", GET_VERSION)]


def test_older_runtime_gets_an_error_status_not_a_crash() -> None:
    """RegisterCustomOps against an onnxruntime that only knows API versions < 17 (as 1.16 does): it must
    return an error status naming the required version. The real runtime supplies the status functions."""
    capi = Path(onnxruntime.__file__).parent / "capi"
    runtime = ctypes.CDLL(str(next(capi.glob("libonnxruntime.so*"))))
    runtime.OrtGetApiBase.restype = ctypes.POINTER(OrtApiBase)
    real = runtime.OrtGetApiBase().contents

    @GET_API
    def old_get_api(version: int) -> int:
        return real.GetApi(version) if version <= 16 else 0

    @GET_VERSION
    def old_version() -> int:
        return ctypes.addressof(OLD_VERSION)

    fake = OrtApiBase(old_get_api, old_version)
    library = ctypes.CDLL(str(bnn2onnx.library_path()))
    library.RegisterCustomOps.restype = ctypes.c_void_p
    library.RegisterCustomOps.argtypes = [ctypes.c_void_p, ctypes.POINTER(OrtApiBase)]
    status = library.RegisterCustomOps(None, ctypes.byref(fake))
    assert status, "registration against an old runtime must fail with a status"
    api = ctypes.cast(real.GetApi(1), ctypes.POINTER(ctypes.c_void_p))
    get_error_message = ctypes.CFUNCTYPE(ctypes.c_char_p, ctypes.c_void_p)(api[2])  # OrtApi::GetErrorMessage
    message = get_error_message(status).decode()
    assert "onnxruntime >= 1.17" in message and "1.16.3" in message, message


def test_declared_output_types_and_shapes_follow_batch_symbols() -> None:
    """Shape inference gives every output its type and shape; a symbolic batch passes through."""
    w = numpy_helper.from_array(pack_bits(np.zeros((8, 3, 3, 40), bool)), "w")
    thresholds = numpy_helper.from_array(np.zeros(8, np.int32), "t")
    directions = numpy_helper.from_array(np.ones(8, np.int32), "d")
    nodes = [schema.make_node(schema.BIT_PACK, ["x"], ["packed"]),
             schema.make_node(schema.BINARY_CONV2D, ["packed", "w", "t", "d"], ["conv"], channels_in=40,
                              strides=[2, 2], pads=[0, 0, 1, 1], packed_output=1),
             schema.make_node(schema.BINARY_MAXPOOL2D, ["conv"], ["pooled"], channels=8, kernel_shape=[2, 2]),
             schema.make_node(schema.BIT_UNPACK, ["pooled"], ["y"], channels=8)]
    graph = helper.make_graph(nodes, "shapes", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                              ["batch", 40, 9, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [w, thresholds, directions])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), schema.opset_import()])
    sess = session(model)
    out = sess.get_outputs()[0]
    assert out.type == "tensor(float)" and out.shape == ["batch", 8, 3, 3]
    x = np.random.default_rng(0).standard_normal((3, 40, 9, 9)).astype(np.float32)
    assert sess.run(None, {"x": x})[0].shape == (3, 8, 3, 3)


@pytest.mark.parametrize("packed_output, expected_type", [(0, "tensor(float)"), (1, "tensor(int32)")])
def test_dense_output_type_follows_packed_output(packed_output: int, expected_type: str) -> None:
    dtype = np.int32 if packed_output else np.float32
    inits = [numpy_helper.from_array(pack_bits(np.zeros((40, 70), bool)), "w"),
             numpy_helper.from_array(np.ones(40, dtype), "a"), numpy_helper.from_array(np.zeros(40, dtype), "b")]
    node = schema.make_node(schema.BINARY_DENSE, ["x", "w", "a", "b"], ["y"], channels_in=70,
                            packed_output=packed_output)
    graph = helper.make_graph([node], "dense", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 70])],
                              [onnx.ValueInfoProto(name="y")], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), schema.opset_import()])
    out = session(model).get_outputs()[0]
    assert out.type == expected_type
    assert out.shape == ["n", 40 if not packed_output else 2]


CONCRETE_TYPING_RUN = """
import sys
import numpy as np
import bnn2onnx
session = bnn2onnx.inference_session(sys.argv[1])
np.save(sys.argv[3], session.run(None, {session.get_inputs()[0].name: np.load(sys.argv[2])})[0])
"""


def test_ops_registered_with_concrete_types_give_the_same_outputs(tmp_path: Path) -> None:
    """BNN2ONNX_OP_TYPING=concrete: the per-type variants that runtimes before 1.22 get, here in the newest one, on
    a converted model with float and packed outputs, float and packed inputs."""
    model = bnn2onnx.convert(Path(__file__).resolve().parent.parent / "models" / "digits_bnn.h5", verify_result=False)
    onnx.save(model, tmp_path / "digits.onnx")
    x = np.random.default_rng(1).uniform(-1, 1, (32, 8, 8, 1)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    subprocess.run([sys.executable, "-c", CONCRETE_TYPING_RUN, str(tmp_path / "digits.onnx"), str(tmp_path / "x.npy"),
                    str(tmp_path / "y.npy")], check=True, timeout=300, cwd=tmp_path,
                   env={**os.environ, "BNN2ONNX_OP_TYPING": "concrete"})
    expected = session(model).run(None, {model.graph.input[0].name: x})[0]
    assert np.array_equal(np.load(tmp_path / "y.npy"), expected)
