"""The inference server: Open Inference Protocol v2 routes, a friendly ``/predict`` and
``/explain``, Prometheus ``/metrics``, and a web page at ``/`` to try the model.

ONNX Runtime runs the model (the run's verified ONNX export, made on first use); PyTorch is
the fallback. Bad requests get a 4xx with a message saying what was wrong; the server keeps
serving.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import time
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..data.info import DataInfo
from ..errors import NetwrightError
from ..run import Run

MAX_BODY = 1 << 20  # bytes: larger requests get 413
DATATYPES = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Model:
    """What the server serves: a run's model (or variant), its preprocessing and its engine."""

    def __init__(self, run: Run, variant: str | None = None, engine: str = "auto", threads: int = 1):
        from ..compress.variants import load_variant
        from ..generative import require_supervised

        require_supervised(run, "serve")  # the server predicts classes or values
        self.run, self.info = run, run.info
        self.name = run.name if variant is None else f"{run.name}-{variant}"
        self.variant = variant or "original"
        self.torch_model = load_variant(run, self.variant).module
        self.engine = "torch"
        self.session = None
        if engine not in ("auto", "onnx", "torch"):
            raise NetwrightError(f"--engine {engine}: choose auto, onnx or torch")
        if engine in ("auto", "onnx"):
            try:
                self.session = self._onnx_session(threads)
                self.engine = "onnxruntime"
            except NetwrightError:
                if engine == "onnx":
                    raise
        if self.torch_model is None and self.session is None:
            raise NetwrightError(f"variant '{self.variant}' runs on ONNX Runtime only and its file did not load")
        torch.set_num_threads(threads)
        self.input_name = "input"
        self.dtype = np.int64 if self.info.modality == "tokens" else np.float32

    def _onnx_session(self, threads: int):
        from .export import export
        from .onnx_io import onnx_session

        folder = self.run.file("export") if self.variant == "original" else self.run.file("export") / self.variant
        if not (folder / "model.onnx").is_file() or not (folder / "verify.json").is_file():
            export(self.run, variant=None if self.variant == "original" else self.variant)
        return onnx_session(folder / "model.onnx", threads)

    def outputs(self, x: np.ndarray) -> np.ndarray:
        if self.session is not None:
            return self.session.run(None, {self.input_name: x})[0]
        with torch.no_grad():
            return self.torch_model(torch.from_numpy(x)).numpy()

    def metadata(self) -> dict[str, Any]:
        shape = [-1, *self.info.input_shape]
        return {"name": self.name, "versions": ["1"], "platform": self.engine,
                "inputs": [{"name": self.input_name, "datatype": "INT64" if self.dtype == np.int64 else "FP32",
                            "shape": shape}],
                "outputs": [{"name": "output", "datatype": "FP32", "shape": [-1, self.info.num_outputs]}],
                "parameters": {"task": self.info.task, "modality": self.info.modality,
                               "classes": self.info.class_names, "preprocessing": "none: normalised model inputs; "
                               "POST /predict takes raw inputs"}}

    def decode(self, out: np.ndarray) -> list[dict[str, Any]]:
        info = self.info
        if info.picks_class:
            z = out.astype(np.float64)
            p = np.exp(z - z.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            return [{"label": info.class_names[int(r.argmax())], "class": int(r.argmax()), "confidence": float(r.max()),
                     "probabilities": {n: round(float(v), 6) for n, v in zip(info.class_names, r)}} for r in p]
        t = info.preprocess["target"]
        return [{"prediction": float(v) * t["std"] + t["mean"]} for v in out[:, 0]]


# ---------------------------------------------------------------------- request parsing


def parse_json(body: bytes) -> Any:
    if len(body) > MAX_BODY:
        raise BadRequest(413, f"request body is {len(body)} bytes; the limit is {MAX_BODY}")
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except BadRequest:
        raise
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(400, f"malformed JSON: {e}") from None


def _reject_constant(name: str) -> float:
    raise BadRequest(400, f"{name} is not a number this model accepts; send finite values")


def v2_tensor(model: Model, request: Any) -> np.ndarray:
    """The input tensor of an Open Inference Protocol v2 request, checked against the model."""
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list) or not request["inputs"]:
        raise BadRequest(422, "expected {\"inputs\": [{\"name\", \"shape\", \"datatype\", \"data\"}]}")
    if len(request["inputs"]) != 1:
        raise BadRequest(422, f"this model takes one input tensor, got {len(request['inputs'])}")
    t = request["inputs"][0]
    for key in ("name", "shape", "datatype", "data"):
        if key not in t:
            raise BadRequest(422, f"inputs[0] is missing the field '{key}'")
    if t["name"] != model.input_name:
        raise BadRequest(422, f"unknown input '{t['name']}'; this model's input is '{model.input_name}'")
    if t["datatype"] not in DATATYPES:
        raise BadRequest(422, f"datatype {t['datatype']!r} is not supported; use {', '.join(DATATYPES)}")
    expected = tuple(model.info.input_shape)
    shape = t["shape"]
    if not (isinstance(shape, list) and all(isinstance(s, int) and s > 0 for s in shape)):
        raise BadRequest(422, "shape must be a list of positive integers")
    if tuple(shape[1:]) != expected:
        raise BadRequest(422, f"shape {shape} does not fit: this model takes [N, {', '.join(map(str, expected))}]")
    try:
        x = np.asarray(t["data"], dtype=DATATYPES[t["datatype"]])
    except (ValueError, TypeError):
        raise BadRequest(422, f"data is not all numbers of type {t['datatype']}") from None
    if x.size != math.prod(shape):
        raise BadRequest(422, f"data has {x.size} values; shape {shape} needs {math.prod(shape)}")
    return check_values(model, x.reshape(shape))


def check_values(model: Model, x: np.ndarray) -> np.ndarray:
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise BadRequest(422, "inputs hold NaN or infinity; send finite values")
    if model.info.modality == "tokens":
        if np.issubdtype(x.dtype, np.floating) and not np.all(x == np.round(x)):
            raise BadRequest(422, "token inputs must be whole numbers")
        x = x.astype(np.int64)
        if x.min() < 0 or x.max() >= len(model.info.vocab):
            raise BadRequest(422, f"token ids must be in 0..{len(model.info.vocab) - 1}")
        return x
    return np.ascontiguousarray(x, dtype=np.float32)


def raw_inputs(model: Model, request: Any) -> np.ndarray:
    """Model inputs from a friendly request, the run's preprocessing applied.

    ``{"image": "<base64 PNG>"}``, ``{"pixels": [[...]]}`` (raw pixel values),
    ``{"features": {"name": value}}`` or a list of such objects, ``{"values": [...]}``
    (a sequence), ``{"text": "..."}``.
    """
    from ..data.preprocess import encode_image
    from ..predict import encode_inputs

    info = model.info
    if not isinstance(request, dict):
        raise BadRequest(422, "expected a JSON object such as {\"features\": {...}} or {\"image\": \"<base64 PNG>\"}")
    try:
        if "image" in request:
            from PIL import Image, UnidentifiedImageError

            if info.modality != "image":
                raise BadRequest(422, f"this model takes {info.modality} inputs, not an image")
            data = request["image"]
            if not isinstance(data, str):
                raise BadRequest(422, "image must be a base64 string (a PNG or JPEG, optionally a data: URL)")
            try:
                raw = base64.b64decode(data.split(",", 1)[-1], validate=False)
                image = Image.open(io.BytesIO(raw))
                image.load()
            except (ValueError, UnidentifiedImageError, OSError) as e:
                raise BadRequest(422, f"image could not be decoded ({e.__class__.__name__})") from None
            from ..data.preprocess import normalize

            x = normalize(info.preprocess, encode_image({**info.preprocess, "resize": True}, image, "image"))
        elif "pixels" in request:
            x = encode_inputs(info, np.asarray(request["pixels"], dtype=np.float64), "pixels")
        elif "values" in request:
            x = encode_inputs(info, np.asarray(request["values"], dtype=np.float64), "values")
        elif "features" in request:
            rows = request["features"]
            rows = [rows] if isinstance(rows, dict) else rows
            if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
                raise BadRequest(422, "features must be an object {name: value} or a list of them")
            if info.preprocess["kind"] != "table":
                raise BadRequest(422, f"this model takes {info.modality} inputs, not named features")
            table = {c["name"]: [r.get(c["name"], "") for r in rows] for c in info.preprocess["columns"]}
            missing = [c for c, v in table.items() if any(x == "" or x is None for x in v)]
            if missing:
                raise BadRequest(422, f"missing feature(s): {', '.join(missing)}")
            x = encode_inputs(info, {k: [str(v) for v in vals] for k, vals in table.items()}, "features")
        elif "text" in request:
            if not isinstance(request["text"], str):
                raise BadRequest(422, "text must be a string")
            x = encode_inputs(info, request["text"], "text")
        else:
            raise BadRequest(422, "expected one of the fields image, pixels, features, values or text")
    except NetwrightError as e:
        raise BadRequest(422, str(e)) from None
    except (ValueError, TypeError) as e:
        raise BadRequest(422, f"inputs are not numbers of the expected shape ({e})") from None
    return check_values(model, np.asarray(x))


# ---------------------------------------------------------------------- explanations


def explanation(model: Model, x: np.ndarray, method: str) -> dict[str, Any]:
    """One input's attribution, with a picture for images."""
    from ..explain.methods import METHODS, baseline_for, check_method

    torch_model = model.torch_model
    if torch_model is None:
        raise BadRequest(422, f"variant '{model.variant}' has no PyTorch model to explain; serve the original")
    if method not in ("saliency", "integrated_gradients", "smoothgrad", "gradcam", "occlusion"):
        raise BadRequest(422, f"method '{method}' is not offered here; use saliency or integrated_gradients")
    try:
        check_method(method, torch_model, model.info)
    except NetwrightError as e:
        raise BadRequest(422, str(e)) from None
    t = torch.from_numpy(x[:1])
    with torch.no_grad():
        target = torch_model(t).argmax(1) if model.info.picks_class else torch.zeros(1, dtype=torch.long)
    attr = METHODS[method].attribute(torch_model, t, target, baseline_for(model.info, t), model.info).detach().double()
    a = attr[0].numpy()
    out: dict[str, Any] = {"method": method, "target": int(target[0]), "shape": list(a.shape),
                           "attribution": np.round(a, 6).tolist()}
    if model.info.modality == "image":
        out["overlay_png"] = _overlay(model.info, x[0], a)
    elif model.info.feature_names:
        order = np.argsort(-np.abs(a))[:10]
        out["top_features"] = [{"feature": model.info.feature_names[i], "attribution": float(a[i])} for i in order]
    return out


def _overlay(info: DataInfo, x: np.ndarray, a: np.ndarray) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pre = info.preprocess
    raw = x * np.asarray(pre["std"]).reshape(-1, 1, 1) + np.asarray(pre["mean"]).reshape(-1, 1, 1)
    img = raw[0] if raw.shape[0] == 1 else np.clip(raw.transpose(1, 2, 0) / max(raw.max(), 1e-8), 0, 1)
    heat = np.abs(a).sum(0)
    fig, ax = plt.subplots(figsize=(2.4, 2.4), dpi=100)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
    ax.imshow(heat / max(heat.max(), 1e-12), cmap="inferno", alpha=0.6, vmin=0, vmax=1)
    ax.axis("off")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", pad_inches=0)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


# ---------------------------------------------------------------------- the app


class Observe:
    """ASGI middleware: refuse bodies over ``MAX_BODY`` (413) and count requests and latency
    per route for ``/metrics``. Plain ASGI: Starlette's ``BaseHTTPMiddleware`` costs more per
    request than the digits model does."""

    def __init__(self, app: Any, requests_total: Any, latency: Any):
        self.app, self.requests_total, self.latency = app, requests_total, latency

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = [500]
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > MAX_BODY:
            status[0] = 413
            await JSONResponse({"error": f"request body is {int(length)} bytes; the limit is {MAX_BODY}"}, 413)(
                scope, receive, send)
        else:
            async def send_status(message: dict) -> None:
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)

            await self.app(scope, receive, send_status)
        route = scope.get("route")
        name = route.path if route is not None else "unmatched"
        self.requests_total.labels(name, str(status[0])).inc()
        self.latency.labels(name).observe(time.perf_counter() - t0)


def default_wait_s(model: Model) -> float:
    """How long a request waits for others to batch with: about one single-row model call,
    between 0.5 and 5 ms, so a lone request pays at most about twice its latency."""
    x = np.zeros((1, *model.info.input_shape), dtype=model.dtype)
    model.outputs(x)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        model.outputs(x)
        times.append(time.perf_counter() - t)
    return float(min(0.005, max(0.0005, sorted(times)[2])))


def create_app(run: Run | str | os.PathLike, variant: str | None = None, engine: str = "auto", threads: int = 1,
               max_batch: int = 64, max_wait_ms: float | None = None):
    """A FastAPI application serving one run's model.

    Args:
        max_batch: most rows stacked into one model call from concurrent requests (1: no batching).
        max_wait_ms: longest a request waits for others (default: about one single-row call).
    """
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

    from .batching import Batcher
    from .page import page

    if max_batch < 1:
        raise NetwrightError(f"--max-batch {max_batch}: give 1 (no batching) or more rows")
    if max_wait_ms is not None and not 0 <= max_wait_ms <= 1000:
        raise NetwrightError(f"--max-wait-ms {max_wait_ms:g}: give 0 to 1000 milliseconds")
    run = run if isinstance(run, Run) else Run.open(run)
    model = Model(run, variant, engine, threads)
    registry = CollectorRegistry()
    requests_total = Counter("netwright_requests_total", "HTTP requests", ["route", "status"], registry=registry)
    latency = Histogram("netwright_request_seconds", "request latency", ["route"], registry=registry,
                        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
    batch_rows = Histogram("netwright_batch_rows", "rows per model call (dynamic batching)", registry=registry,
                           buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
    wait_s = default_wait_s(model) if max_wait_ms is None else max_wait_ms / 1000
    batcher = Batcher(model.outputs, max_batch, wait_s, observe=batch_rows.observe)

    app = FastAPI(title=f"netwright: {model.name}", version="1",
                  description=f"{model.info.task} on {model.info.name} ({model.engine})")
    app.state.model = model
    app.state.batching = {"max_batch": max_batch, "max_wait_ms": round(wait_s * 1000, 3)}

    app.add_middleware(Observe, requests_total=requests_total, latency=latency)

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest):
        return JSONResponse({"error": exc.message}, exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        return JSONResponse({"error": f"{'.'.join(map(str, first.get('loc', [])))}: {first.get('msg', 'invalid')}"}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse({"error": exc.detail if isinstance(exc.detail, str) else "error"}, exc.status_code)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception):  # a bug, not bad input: keep serving
        return JSONResponse({"error": f"internal error: {exc.__class__.__name__}"}, 500)

    def check_name(name: str) -> None:
        if name != model.name:
            raise BadRequest(404, f"unknown model '{name}'; this server serves '{model.name}'")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return page(model)

    @app.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.get("/v2")
    async def server_metadata() -> dict[str, Any]:
        return {"name": "netwright", "version": "1", "extensions": []}

    @app.get("/v2/models/{name}")
    async def model_metadata(name: str) -> dict[str, Any]:
        check_name(name)
        return model.metadata()

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str) -> dict[str, Any]:
        check_name(name)
        return {"name": name, "ready": True}

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request) -> dict[str, Any]:
        check_name(name)
        payload = parse_json(await request.body())
        x = v2_tensor(model, payload)
        out = await batcher.run(x)
        response = {"model_name": model.name, "model_version": "1",
                    "outputs": [{"name": "output", "datatype": "FP32", "shape": list(out.shape),
                                 "data": out.reshape(-1).tolist()}]}
        if isinstance(payload, dict) and "id" in payload:
            response["id"] = payload["id"]
        return response

    @app.post("/predict")
    async def predict(request: Request) -> dict[str, Any]:
        """Raw inputs in (features, pixels, a base64 image, values or text); labels and probabilities out."""
        x = raw_inputs(model, parse_json(await request.body()))
        return {"model": model.name, "engine": model.engine, "predictions": model.decode(await batcher.run(x))}

    @app.post("/explain")
    async def explain(request: Request) -> dict[str, Any]:
        """Attribution for one raw input (as for /predict), with a heat-map overlay for images."""
        payload = parse_json(await request.body())
        method = payload.pop("method", "saliency") if isinstance(payload, dict) else "saliency"
        x = raw_inputs(model, payload)
        return {"model": model.name, "prediction": model.decode(model.outputs(x[:1]))[0],
                **explanation(model, x, method)}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def serve(run: Run | str | os.PathLike, variant: str | None = None, host: str = "127.0.0.1", port: int = 8000,
          engine: str = "auto", threads: int = 1, max_batch: int = 64, max_wait_ms: float | None = None) -> None:
    """Serve a run until interrupted (SIGINT/SIGTERM shut down gracefully)."""
    import contextlib
    import signal

    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # stop gracefully on SIGINT/SIGTERM, then exit 0 (uvicorn re-raises them)
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self.handle_exit)
            yield

    import socket

    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as e:
            raise NetwrightError(f"cannot listen on {host}:{port} ({e.strerror}); pick another --port") from None
    app = create_app(run, variant, engine, threads, max_batch=max_batch, max_wait_ms=max_wait_ms)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=5)
    server = Server(config)
    model = app.state.model
    b = app.state.batching
    batching = f"batches of up to {b['max_batch']} rows, {b['max_wait_ms']:g} ms wait" if b["max_batch"] > 1 else "no batching"
    print(f"serving {model.name} ({model.engine}; {batching}) on http://{host}:{port}/  (Ctrl-C to stop)", flush=True)
    server.run()
    print("stopped", flush=True)
