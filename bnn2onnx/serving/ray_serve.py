"""`bnn2onnx serve`: a converted model as a Ray Serve deployment. Each replica opens its own onnxruntime session
with the bnn2onnx library registered (bnn2onnx must be installed on every node that runs one); requests are
batched (`serve.batch`) into one run when the model's batch dimension is free; bodies are checked before they
reach the model (requests.py) so that a bad request gets a 4xx and never takes a replica down. GET /healthz
answers once the replica's session is open."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from bnn2onnx.runtime import inference_session
from bnn2onnx.serving.requests import (
    BadRequest,
    batch_dimension_free,
    decode_body,
    encode_outputs,
    model_inputs,
)


@dataclass(frozen=True)
class ServeConfig:
    """How replicas run the model and what requests they accept."""

    replicas: int = 1
    threads: int = 1  # onnxruntime intra-op threads per replica, and the CPUs Ray reserves for it
    max_batch_size: int = 16  # requests joined into one run
    batch_wait_ms: float = 2.0  # how long a request waits for others to join its batch
    max_body_bytes: int = 16 * 2**20
    max_rows: int = 1024  # rows (first dimension) of one request


@serve.deployment
class ConvertedModel:
    """One replica: the model's session and the request handling around it."""

    def __init__(self, model_bytes: bytes, config: ServeConfig) -> None:
        model = onnx.load_from_string(model_bytes)
        self.inputs = model_inputs(model)
        self.config = config
        self.session = inference_session(model_bytes, intra_op_num_threads=config.threads)
        self.output_names = [output.name for output in self.session.get_outputs()]
        self.joinable = batch_dimension_free(model)
        self.run_batch.set_max_batch_size(config.max_batch_size if self.joinable else 1)
        self.run_batch.set_batch_wait_timeout_s(config.batch_wait_ms / 1e3)

    @serve.batch
    async def run_batch(self, requests: list[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
        return await asyncio.to_thread(self._run, requests)

    def _run(self, requests: list[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
        """Each request's outputs; requests whose arrays agree past the first dimension run as one."""
        results: list[list[np.ndarray]] = [[] for _ in requests]
        groups: dict[tuple, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(tuple(request[spec.name].shape[1:] for spec in self.inputs), []).append(index)
        for members in groups.values():
            feeds = {spec.name: np.concatenate([requests[i][spec.name] for i in members]) for spec in self.inputs}
            outputs = self.session.run(None, feeds)
            ends = np.cumsum([len(requests[i][self.inputs[0].name]) for i in members])[:-1]
            for i, parts in zip(members, zip(*(np.split(output, ends) for output in outputs))):
                results[i] = list(parts)
        return results

    async def __call__(self, request: Request) -> Response:
        if request.url.path.rstrip("/").endswith("/healthz"):
            return PlainTextResponse("ok")
        if request.method != "POST":
            return JSONResponse({"error": "POST a JSON or .npy body; GET /healthz for health"}, status_code=405)
        try:
            body = await self._read_body(request)
            feeds = decode_body(body, request.headers.get("content-type", ""), self.inputs, self.config.max_rows)
        except BadRequest as error:
            return JSONResponse({"error": str(error)}, status_code=error.status)
        outputs = await self.run_batch(feeds)
        content, media_type = encode_outputs(self.output_names, outputs, request.headers.get("accept", ""))
        return Response(content, media_type=media_type)

    async def _read_body(self, request: Request) -> bytes:
        """The body, refused (413) as soon as it is known to pass the limit: by its declared length, or while it
        streams in."""
        limit = self.config.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise BadRequest(413, f"body of {declared} bytes: the limit is {limit}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BadRequest(413, f"body over the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def application(model: Path, config: ServeConfig) -> serve.Application:
    """The deployment of `model`, bound and ready for serve.run. The model travels as bytes, so replicas on other
    nodes need only bnn2onnx installed, not the file."""
    model_bytes = model.read_bytes()
    inference_session(model_bytes)  # a model the library cannot run fails here, not in every replica
    return ConvertedModel.options(num_replicas=config.replicas,
                                  ray_actor_options={"num_cpus": config.threads}).bind(model_bytes, config)


def serve_model(model: Path, config: ServeConfig, host: str, port: int, address: str | None,
                blocking: bool = True) -> None:
    """Starts Ray (a local instance, or connects to the cluster at `address`), Serve's HTTP proxy on host:port, and
    the model's deployment at /. Blocks until interrupted when `blocking`."""
    import ray

    app = application(model, config)
    ray.init(address=address, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    serve.start(http_options={"host": host, "port": port})
    serve.run(app, name="bnn2onnx", route_prefix="/", blocking=blocking)
