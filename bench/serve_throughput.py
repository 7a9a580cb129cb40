"""Requests per second of a converted model served by Ray Serve (`bnn2onnx serve`'s deployment on 127.0.0.1: HTTP,
.npy bodies, Serve's batching) against direct onnxruntime calls in one process, in one run: each round times the
same requests both ways, `clients` at a time over HTTP, one after another directly (one session, 1 thread). No
assertion: the ratio is what to read. A small model measures what serving costs per request (HTTP, Ray's proxy
and routing); a larger one how much of its compute the replicas add on top. Ray needs the serve extra.

    python bench/serve_throughput.py [MODEL.onnx] [--replicas 2] [--clients 8] [--requests 400] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import socket
import statistics
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx

import bnn2onnx
from bnn2onnx.serving.requests import model_inputs

ROOT = Path(__file__).resolve().parent.parent


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def requests_for(model: Path, count: int) -> list[np.ndarray]:
    """`count` single-row inputs for the model's one input (free dimensions taken as 1)."""
    (spec,) = model_inputs(onnx.load(model))
    shape = [1 if d is None else d for d in spec.shape]
    rng = np.random.default_rng(0)
    return [rng.standard_normal(shape).astype(spec.dtype) for _ in range(count)]


def direct_per_second(model: Path, inputs: list[np.ndarray]) -> float:
    session = bnn2onnx.inference_session(model, intra_op_num_threads=1)
    name = session.get_inputs()[0].name
    start = time.perf_counter()
    for x in inputs:
        session.run(None, {name: x})
    return len(inputs) / (time.perf_counter() - start)


def served_per_second(url: str, inputs: list[np.ndarray], clients: int) -> float:
    bodies = [_npy(x) for x in inputs]

    def ask(body: bytes) -> None:
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/x-npy",
                                                                   "Accept": "application/x-npy"})
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(ask, bodies))
    return len(bodies) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="a converted .onnx (default: the digits model, converted)")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8, help="requests in flight at a time")
    parser.add_argument("--requests", type=int, default=400, help="requests per round and contender")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import ray
    from ray import serve

    from bnn2onnx.serving.ray_serve import ServeConfig, application

    with tempfile.TemporaryDirectory() as folder:
        model = Path(args.model) if args.model else Path(folder) / "digits.onnx"
        if not args.model:
            onnx.save(bnn2onnx.convert(str(ROOT / "models" / "digits_bnn.h5")), model)
        inputs = requests_for(model, args.requests)
        port = _free_port()
        ray.init(include_dashboard=False, log_to_driver=False)
        try:
            serve.start(http_options={"host": "127.0.0.1", "port": port})
            serve.run(application(model, ServeConfig(replicas=args.replicas)), name="bnn2onnx", route_prefix="/")
            url = f"http://127.0.0.1:{port}/"
            served_per_second(url, inputs[: args.clients * 4], args.clients)  # warm-up
            ratios = []
            print(f"{model.name}: {args.requests} single-row requests per round; Ray Serve: {args.replicas} "
                  f"replica(s), {args.clients} clients; direct: one onnxruntime session, 1 thread")
            for round_index in range(args.rounds):
                direct = direct_per_second(model, inputs)
                served = served_per_second(url, inputs, args.clients)
                ratios.append(served / direct)
                print(f"round {round_index + 1}: direct {direct:9.0f}/s, Ray Serve {served:7.0f}/s, "
                      f"served / direct {served / direct:.3f}")
            print(f"served / direct: median {statistics.median(ratios):.3f}, range {min(ratios):.3f}-"
                  f"{max(ratios):.3f}")
        finally:
            serve.shutdown()
            ray.shutdown()


if __name__ == "__main__":
    main()
