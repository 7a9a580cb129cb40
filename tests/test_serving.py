"""Serving a converted model: Ray Serve on 127.0.0.1 (2 replicas, concurrent clients, malformed requests), and the
request checks it relies on."""

from __future__ import annotations

import http.client
import io
import json
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest
from cli_runner import CLI, run_cli

import bnn2onnx
from bnn2onnx.serving.requests import BadRequest, decode_body, model_inputs

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "models" / "digits_bnn.h5"
# Seconds the deployment may take to come up (Ray's start, two replicas' sessions), and one request.
STARTUP_S, REQUEST_S = 180, 60


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("serve") / "digits.onnx"
    onnx.save(bnn2onnx.convert(str(DEMO)), path)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: bytes, content_type: str, accept: str = "application/json") -> tuple[int, bytes, str]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type, "Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_S) as response:
            return response.status, response.read(), response.headers.get("content-type", "")
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers.get("content-type", "")


def _post_large(url: str, size: int) -> tuple[int, bytes]:
    """A body of `size` zero bytes, sent a MiB at a time as a client streaming an upload does: the server may answer
    and close before the body is all sent, and the answer is read all the same."""
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=REQUEST_S)
    connection.putrequest("POST", parsed.path)
    connection.putheader("Content-Type", "application/x-npy")
    connection.putheader("Content-Length", str(size))
    connection.endheaders()
    try:
        for start in range(0, size, 2**20):
            connection.send(bytes(min(2**20, size - start)))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server stopped reading: its answer is waiting
    response = connection.getresponse()
    return response.status, response.read()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_request_checks_refuse_what_does_not_fit_the_model(digits_model: Path) -> None:
    inputs = model_inputs(onnx.load(digits_model))
    good = np.zeros((2, 8, 8, 1), np.float32)
    assert decode_body(_npy(good), "application/x-npy", inputs, 16)["image"].shape == (2, 8, 8, 1)
    feeds = decode_body(json.dumps({"inputs": {"image": good.tolist()}}).encode(), "application/json", inputs, 16)
    np.testing.assert_array_equal(feeds["image"], good)
    cases = {"not JSON": (b"{inputs", "application/json", 400, "not JSON"),
             "wrong shape": (_npy(np.zeros((2, 8, 7, 1), np.float32)), "application/x-npy", 400, "shape [2, 8, 7, 1]"),
             "wrong dtype": (_npy(good.astype(np.float64)), "application/x-npy", 400, "dtype float64"),
             "strings": (json.dumps({"inputs": [["a"]]}).encode(), "application/json", 400, "numbers"),
             "ragged": (json.dumps({"inputs": [[1, 2], [3]]}).encode(), "application/json", 400, "rectangular"),
             "wrong name": (json.dumps({"inputs": {"x": []}}).encode(), "application/json", 400, "takes ['image']"),
             "too many rows": (_npy(np.zeros((17, 8, 8, 1), np.float32)), "application/x-npy", 400, "at most 16"),
             "pickle": (_npy(np.array([object()], dtype=object)), "application/x-npy", 400, "not a .npy array"),
             "media type": (b"x", "text/plain", 415, "text/plain")}
    for name, (body, content_type, status, message) in cases.items():
        with pytest.raises(BadRequest, match=None) as caught:
            decode_body(body, content_type, inputs, 16)
        assert caught.value.status == status and message in str(caught.value), name


def test_a_joined_run_answers_each_request_as_its_own_run(tmp_path: Path) -> None:
    """Requests of different sizes past the batch dimension run in separate groups; each gets its own rows."""
    from onnx import TensorProto, helper

    from bnn2onnx.ops import schema
    from bnn2onnx.serving.ray_serve import ConvertedModel, ServeConfig

    graph = helper.make_graph([schema.make_node("BitPack", ["x"], ["y"])], "pack",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, ["n", "h", "w", 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), schema.opset_import()])
    replica = ConvertedModel.func_or_class(model.SerializeToString(), ServeConfig())
    assert replica.joinable
    rng = np.random.default_rng(0)
    requests = [{"x": rng.standard_normal(shape).astype(np.float32)}
                for shape in [(1, 3, 4, 5), (2, 3, 6, 5), (3, 3, 4, 5), (1, 3, 6, 5)]]
    session = bnn2onnx.inference_session(model)
    for request, outputs in zip(requests, replica._run(requests)):
        np.testing.assert_array_equal(outputs[0], session.run(None, request)[0])


def test_ray_serve_answers_concurrent_clients_as_onnxruntime_does(digits_model: Path) -> None:
    import ray
    from ray import serve

    from bnn2onnx.serving.ray_serve import ServeConfig, application

    session = bnn2onnx.inference_session(digits_model)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        started = threading.Thread(target=serve.run, daemon=True, kwargs={
            "target": application(digits_model, ServeConfig(replicas=2)), "name": "bnn2onnx", "route_prefix": "/"})
        started.start()
        started.join(STARTUP_S)
        assert not started.is_alive(), f"the deployment did not come up in {STARTUP_S} s"
        with urllib.request.urlopen(url + "healthz", timeout=REQUEST_S) as response:
            assert response.read() == b"ok"

        rng = np.random.default_rng(0)
        batches = [rng.standard_normal((1 + i % 3, 8, 8, 1)).astype(np.float32) for i in range(200)]

        def ask(index: int) -> np.ndarray:
            x = batches[index]
            if index % 2:  # half as .npy both ways, half as JSON
                status, body, _ = _post(url, _npy(x), "application/x-npy", accept="application/x-npy")
                assert status == 200, body
                return np.load(io.BytesIO(body))
            status, body, _ = _post(url, json.dumps({"inputs": {"image": x.tolist()}}).encode(), "application/json")
            assert status == 200, body
            return np.asarray(json.loads(body)["outputs"]["float_classifier"], np.float32)

        with ThreadPoolExecutor(max_workers=16) as clients:  # 200 requests, 16 in flight at a time
            answers = list(clients.map(ask, range(len(batches))))
        for x, answer in zip(batches, answers):
            np.testing.assert_array_equal(answer, session.run(None, {"image": x})[0])

        bad = {"wrong shape": (_npy(np.zeros((1, 8, 7, 1), np.float32)), "application/x-npy", 400),
               "wrong dtype": (_npy(np.zeros((1, 8, 8, 1), np.float64)), "application/x-npy", 400),
               "not JSON": (b"{this is not json", "application/json", 400)}
        for name, (body, content_type, status) in bad.items():
            got, answer, _ = _post(url, body, content_type)
            assert got == status, (name, got, answer[:200])
            assert "error" in json.loads(answer), name
        status, answer = _post_large(url, 100 * 2**20)
        assert status == 413 and "limit" in json.loads(answer)["error"], answer[:200]
        # Both replicas still serve: every request below succeeds and matches.
        x = batches[0]
        for _ in range(20):
            status, body, _ = _post(url, _npy(x), "application/x-npy", accept="application/x-npy")
            assert status == 200
            np.testing.assert_array_equal(np.load(io.BytesIO(body)), session.run(None, {"image": x})[0])
        deployment = serve.status().applications["bnn2onnx"].deployments["ConvertedModel"]
        assert deployment.status == "HEALTHY" and deployment.replica_states.get("RUNNING") == 2, deployment
    finally:
        serve.shutdown()
        ray.shutdown()


def test_serve_command_starts_ray_and_answers(digits_model: Path) -> None:
    port = _free_port()
    server = subprocess.Popen([str(CLI), "serve", str(digits_model), "--port", str(port)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                    assert response.read() == b"ok"
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, f"bnn2onnx serve did not answer in {STARTUP_S} s"
                time.sleep(1)
        x = np.ones((1, 8, 8, 1), np.float32)
        status, body, _ = _post(f"http://127.0.0.1:{port}/", _npy(x), "application/x-npy", accept="application/x-npy")
        assert status == 200
        np.testing.assert_array_equal(np.load(io.BytesIO(body)),
                                      bnn2onnx.inference_session(digits_model).run(None, {"image": x})[0])
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_serve_command_refuses_a_missing_model_in_one_line(tmp_path: Path) -> None:
    result = run_cli("serve", str(tmp_path / "none.onnx"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "none.onnx" in result.stderr
