"""The inference server: Open Inference Protocol v2 routes, a friendly ``/predict`` and
``/explain``, Prometheus ``/metrics``, and a web page at ``/`` to try the model.

ONNX Runtime runs the model (the run's verified ONNX export, made on first use); PyTorch is
the fallback. Bad requests get a 4xx with a message saying what was wrong; the server keeps
serving.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..data.info import DataInfo
from ..errors import NetwrightError
from ..run import Run
from .protocol import SERVED_METHODS, BadRequest

MAX_PIXELS = 1 << 24  # pixels of an uploaded image (4096 x 4096): larger ones get 413 before they are decoded
# the image formats an upload may be, told by their first bytes; any other gets 415 before a decoder sees it
IMAGE_FORMATS = {"PNG": b"\x89PNG\r\n\x1a\n", "JPEG": b"\xff\xd8\xff"}


class Model:
    """What the server serves: a run's model (or variant), its preprocessing and its engine."""

    def __init__(self, run: Run, variant: str | None = None, engine: str = "auto", threads: int = 1):
        from ..compress.variants import load_variant
        from ..tasks import run_task

        self.task = run_task(run)
        self.task.require("serve", run)
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
            except OSError as e:  # a read-only run without its ONNX export: serve with PyTorch
                if engine == "onnx":
                    raise NetwrightError(f"{run.path}: cannot write the ONNX export ({e.strerror}); export it where "
                                         "the run is writable, or serve with --engine torch") from None
        if self.torch_model is None and self.session is None:
            raise NetwrightError(f"variant '{self.variant}' runs on ONNX Runtime only and its file did not load")
        torch.set_num_threads(threads)
        self.input_name = "input"
        self.dtype = np.int64 if self.info.modality == "tokens" else np.float32
        from ..calibration import served_temperature

        # a calibrated run's temperature; an ONNX graph exported after calibration divides by it already
        self.temperature = served_temperature(run, self._export_folder() if self.session is not None else None) \
            if self.variant == "original" else 1.0  # compressed variants are not calibrated

    def _export_folder(self) -> Path:
        return self.run.file("export") if self.variant == "original" else self.run.file("export") / self.variant

    def _onnx_session(self, threads: int):
        from .onnx_io import onnx_session
        from .verify import export_verified

        folder = self._export_folder()
        if not (folder / "model.onnx").is_file() or not (folder / "verify.json").is_file():
            from ..atomic import journal

            with self.run.lock("netwright serve (export)"), journal(self.run.path):
                export_verified(self.run, self.task, None if self.variant == "original" else self.variant)
        return onnx_session(folder / "model.onnx", threads)

    def outputs(self, x: np.ndarray) -> np.ndarray:
        """The model's outputs; a calibrated classifier's logits divided by its temperature, on
        every engine and route (as the exported ONNX graph does)."""
        if self.session is not None:
            out = self.session.run(None, {self.input_name: x})[0]
        else:
            with torch.no_grad():
                out = self.torch_model(torch.from_numpy(x)).numpy()
        return out if self.temperature == 1.0 else (out / self.temperature).astype(out.dtype)

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
        rows = self.task.decode(torch.from_numpy(np.asarray(out)))  # outputs() has applied the temperature
        for row in rows:
            if "probabilities" in row:
                row["confidence"] = row["probabilities"][row["label"]]
        return rows


# ---------------------------------------------------------------------- request parsing


def check_values(model: Model, x: np.ndarray) -> np.ndarray:
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise BadRequest(400, "inputs hold NaN or infinity; send finite values")
    if model.info.modality == "tokens":
        if np.issubdtype(x.dtype, np.floating) and not np.all(x == np.round(x)):
            raise BadRequest(400, "token inputs must be whole numbers")
        x = x.astype(np.int64)
        if x.min() < 0 or x.max() >= len(model.info.vocab):
            raise BadRequest(400, f"token ids must be in 0..{len(model.info.vocab) - 1}")
        return x
    return np.ascontiguousarray(x, dtype=np.float32)


def raw_inputs(model: Model, request: Any) -> np.ndarray:
    """Model inputs from a friendly request, the run's preprocessing applied.

    ``{"image": "<base64 PNG>"}``, ``{"pixels": [[...]]}`` (raw pixel values),
    ``{"features": {"name": value}}`` or a list of such objects, ``{"values": [...]}``
    (a sequence), ``{"text": "..."}``.
    """
    from ..data.derive import input_columns
    from ..data.inputs import encode_inputs, field_errors
    from ..data.missing import cell_text
    from ..data.preprocess import encode_image, encode_text, encode_texts, normalize

    info = model.info
    if not isinstance(request, dict):
        raise BadRequest(400, "expected a JSON object such as {\"features\": {...}} or {\"image\": \"<base64 PNG>\"}")
    try:
        if "image" in request:
            if info.modality != "image":
                raise BadRequest(400, f"this model takes {info.modality} inputs, not an image")
            data = request["image"]
            if not isinstance(data, str):
                raise BadRequest(400, "image must be a base64 string (a PNG or JPEG, optionally a data: URL)")
            x = normalize(info.preprocess, encode_image({**info.preprocess, "resize": True}, decode_image(data), "image"))
        elif "pixels" in request:
            x = encode_inputs(info, np.asarray(request["pixels"], dtype=np.float64), "pixels")
        elif "values" in request:
            x = encode_inputs(info, np.asarray(request["values"], dtype=np.float64), "values")
        elif "features" in request:
            rows = request["features"]
            rows = [rows] if isinstance(rows, dict) else rows
            if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
                raise BadRequest(400, "features must be an object {name: value} or a list of them")
            if info.preprocess["kind"] != "table":
                raise BadRequest(400, f"this model takes {info.modality} inputs, not named features")
            columns = info.preprocess["columns"]
            names = input_columns(info.preprocess)  # as the training file had them (a date, not its parts)
            absent = [n for n in names if any(n not in r for r in rows)]
            if absent:
                fills = any(c.get("missing", "error") != "error" for c in columns)
                raise BadRequest(400, f"missing feature(s): {', '.join(absent)}"
                                 + ("; send null for a value to have it filled as in training" if fills else ""))
            unfilled = [c["name"] for c in columns if c["name"] in names and c.get("missing", "error") == "error"
                        and any(r[c["name"]] in ("", None) for r in rows)]
            if unfilled:
                raise BadRequest(400, f"missing feature(s): {', '.join(unfilled)}; this model was trained "
                                 "without missing values there")
            table = {n: [cell_text(r[n]) for r in rows] for n in names}
            try:
                x = encode_inputs(info, table, "features")
            except NetwrightError as e:  # name every field that is wrong, not only the first
                raise BadRequest(400, "; ".join(field_errors(info.preprocess, table, "features")) or str(e)) from None
        elif "text" in request:
            text, pre = request["text"], info.preprocess
            if not isinstance(text, str):
                raise BadRequest(400, "text must be a string")
            if pre["kind"] != "tokens":
                raise BadRequest(400, f"this model takes {info.modality} inputs, not text")
            # encoded here, not by encode_inputs: a string naming a file would be read from the server's disk
            x = encode_texts(pre, [text], "text") if "tokenizer" in pre else encode_text(pre, text, "text")
        else:
            raise BadRequest(400, "expected one of the fields image, pixels, features, values or text")
    except NetwrightError as e:
        raise BadRequest(400, str(e)) from None
    except (ValueError, TypeError, OverflowError) as e:
        raise BadRequest(400, f"inputs are not numbers of the expected shape ({e})") from None
    return check_values(model, np.asarray(x))


def raw_fields(info: DataInfo) -> list[str]:
    """The fields of a /predict body that :func:`raw_inputs` takes for this model."""
    kind = info.preprocess.get("kind")
    return {"image": ["image", "pixels"], "table": ["features", "values"], "tokens": ["text", "values"]}.get(
        kind, ["values"])


def decode_image(data: str) -> Any:
    """A PIL image from base64, refusing images over ``MAX_PIXELS`` before decoding them."""
    from PIL import Image

    try:
        raw = base64.b64decode(data.split(",", 1)[-1], validate=False)
    except ValueError as e:
        raise BadRequest(400, f"image is not base64 ({e}); send a base64 PNG or JPEG") from None
    if not any(raw.startswith(magic) for magic in IMAGE_FORMATS.values()):
        raise BadRequest(415, f"image is not a {' or '.join(IMAGE_FORMATS)} (its first bytes are {raw[:8]!r}); "
                              "convert it to PNG or JPEG")
    try:
        image = Image.open(io.BytesIO(raw), formats=list(IMAGE_FORMATS))
        w, h = image.size
        if w * h <= MAX_PIXELS:
            image.load()
            return image
    except Image.DecompressionBombError:  # Pillow's own limit, far above ours
        w = h = None
    except Exception as e:  # a decoder fed untrusted bytes fails in many ways (OSError, SyntaxError, zlib.error...)
        raise BadRequest(400, f"image could not be decoded ({e.__class__.__name__}); send a PNG or JPEG") from None
    size = f"{w}x{h} pixels" if w else "too many pixels"
    raise BadRequest(413, f"image has {size}; the limit is {MAX_PIXELS} pixels: scale it down first")


# ---------------------------------------------------------------------- explanations


def explanation(model: Model, x: np.ndarray, method: str) -> dict[str, Any]:
    """One input's attribution, with a picture for images."""
    from ..explain.methods import METHODS, baseline_for, check_method

    torch_model = model.torch_model
    if torch_model is None:
        raise BadRequest(400, f"variant '{model.variant}' has no PyTorch model to explain; serve the original")
    if method not in SERVED_METHODS:
        raise BadRequest(400, f"method '{method}' is not offered here; use one of {', '.join(SERVED_METHODS)}")
    try:
        check_method(method, torch_model, model.info)
    except NetwrightError as e:
        raise BadRequest(400, str(e)) from None
    t = torch.from_numpy(x[:1])
    with torch.no_grad():
        target = model.task.target(torch_model(t))
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
    from matplotlib.figure import Figure  # not pyplot: its global state is unsafe across the worker threads

    raw = info.raw(x[None])[0]
    img = raw[0] if raw.shape[0] == 1 else np.clip(raw.transpose(1, 2, 0) / max(raw.max(), 1e-8), 0, 1)
    heat = np.abs(a).sum(0)
    fig = Figure(figsize=(2.4, 2.4), dpi=100)
    ax = fig.subplots()
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
    ax.imshow(heat / max(heat.max(), 1e-12), cmap="inferno", alpha=0.6, vmin=0, vmax=1)
    ax.axis("off")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", pad_inches=0)
    return base64.b64encode(buf.getvalue()).decode("ascii")


# ---------------------------------------------------------------------- the app


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


class Error(BaseModel):
    error: str  # one line: what was wrong and how to fix it


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {400: "malformed request (the message says what to fix)", 401: "missing or wrong API key",
            404: "unknown model, version or route", 408: "the request body came too slowly",
            413: "request body or image too large", 415: "a Content-Type other than JSON, or an image neither PNG nor "
            "JPEG", 422: "invalid request", 503: "busy: retry after Retry-After seconds"}
    out: dict[int | str, dict[str, Any]] = {c: {"model": Error, "description": text[c]} for c in codes}
    if 503 in out:
        out[503]["headers"] = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
    return out


READ_ERRORS, POST_ERRORS = _errors(401, 404, 422), _errors(400, 401, 404, 408, 413, 415, 422, 503)


def create_app(run: Run | str | os.PathLike, variant: str | None = None, engine: str = "auto", threads: int = 1,
               max_batch: int = 64, max_wait_ms: float | None = None, api_key: str | None = None,
               workers: int | None = None, queue: int = 64, body_timeout_s: float = 30.0,
               allowed_hosts: tuple[str, ...] | None = None):
    """A FastAPI application serving one run's model.

    Args:
        max_batch: most rows stacked into one model call from concurrent requests (1: no batching).
        max_wait_ms: longest a request waits for others (default: about one single-row call).
        api_key: every route but /v2/health/* then needs ``Authorization: Bearer KEY`` or
            ``X-API-Key: KEY`` (default: the environment variable NETWRIGHT_API_KEY; unset or empty: open).
        workers: threads decoding requests off the event loop (default: one per core).
        queue: requests in progress beyond ``workers`` before new ones get 503 and Retry-After.
        body_timeout_s: a request body must arrive within this many seconds (else 408).
        allowed_hosts: the names a request's Host header may give (else 400), against pages elsewhere
            that point their own name at this address (DNS rebinding); None: any.
    """
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

    from .batching import Batcher
    from .guard import Guard, Workers
    from .page import page
    from .protocol import (HEADER_LENGTH, INFER_REQUEST, body_schema, infer_response, raw_request,
                           input_tensor, parse_json, split_request, wants_binary)

    if max_batch < 1:
        raise NetwrightError(f"--max-batch {max_batch}: give 1 (no batching) or more rows")
    if max_wait_ms is not None and not 0 <= max_wait_ms <= 1000:
        raise NetwrightError(f"--max-wait-ms {max_wait_ms:g}: give 0 to 1000 milliseconds")
    if (workers is not None and workers < 1) or queue < 0 or body_timeout_s <= 0:
        raise NetwrightError(f"workers {workers}, queue {queue}, body_timeout_s {body_timeout_s:g}: give 1 or more "
                             "workers, a queue of 0 or more and a positive timeout")
    api_key = (os.environ.get("NETWRIGHT_API_KEY") if api_key is None else api_key) or None
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
    pool = Workers(workers, queue)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        yield
        batcher.close()  # the model's and the decoders' threads end with the server
        pool.close()

    app = FastAPI(title=f"netwright: {model.name}", version="1", lifespan=lifespan,
                  description=f"{model.info.task} on {model.info.name} ({model.engine})")
    app.state.model = model
    app.state.batching = {"max_batch": max_batch, "max_wait_ms": round(wait_s * 1000, 3)}
    app.state.api_key = api_key is not None
    app.add_middleware(Guard, requests_total=requests_total, latency=latency, api_key=api_key,
                       body_timeout_s=body_timeout_s, allowed_hosts=allowed_hosts)

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest):
        return JSONResponse({"error": exc.message}, exc.status, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        return JSONResponse({"error": f"{'.'.join(map(str, first.get('loc', [])))}: {first.get('msg', 'invalid')}"}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else "error"
        return JSONResponse({"error": f"{detail}: {request.method} {request.url.path}; the routes are listed at /docs"},
                            exc.status_code, exc.headers)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception):  # a bug, not bad input: keep serving
        return JSONResponse({"error": f"internal error: {exc.__class__.__name__}"}, 500)

    fields = raw_fields(model.info)

    def decode_v2(body: bytes, header_length: str | None) -> tuple[dict, bool, np.ndarray]:
        request, tail = split_request(body, header_length)
        x = input_tensor(request, tail, model.input_name, tuple(model.info.input_shape))
        return request, wants_binary(request, "output"), check_values(model, x)

    def explain_now(body: bytes) -> Response:
        payload = parse_json(body)
        method = payload.pop("method", "saliency") if isinstance(payload, dict) else "saliency"
        if not isinstance(method, str):
            raise BadRequest(400, "method must be a string such as \"saliency\"")
        x = raw_inputs(model, payload)
        return JSONResponse({"model": model.name, "prediction": model.decode(model.outputs(x[:1]))[0],
                             **explanation(model, x, method)})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return page(model)

    @app.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.get("/v2", responses=READ_ERRORS)
    async def server_metadata() -> dict[str, Any]:
        return {"name": "netwright", "version": "1", "extensions": ["binary_tensor_data"]}

    def known_model(name: str) -> None:
        if name != model.name:
            raise BadRequest(404, f"unknown model '{name}'; this server serves '{model.name}'")

    def known_version(name: str, version: str) -> None:
        known_model(name)
        if version != "1":
            raise BadRequest(404, f"unknown version '{version}' of model '{name}'; this server serves version 1")

    models = APIRouter()  # mounted twice: /v2/models/{name} and /v2/models/{name}/versions/{version}

    @models.get("", responses=READ_ERRORS)
    async def model_metadata() -> dict[str, Any]:
        return model.metadata()

    @models.get("/ready", responses=READ_ERRORS)
    async def model_ready() -> dict[str, Any]:
        return {"name": model.name, "ready": True}

    binary_ok = {200: {"description": "outputs as JSON, or (binary tensor extension, when asked) a JSON header of "
                                      "Inference-Header-Content-Length bytes followed by raw little-endian FP32",
                       "content": {"application/json": {"schema": {"type": "object"}},
                                   "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}

    @models.post("/infer", response_class=Response, responses={**binary_ok, **POST_ERRORS},
                 openapi_extra=body_schema(INFER_REQUEST, "an inference request; with the header "
                                           "Inference-Header-Content-Length, that many bytes of JSON followed by each "
                                           "input's parameters.binary_data_size raw little-endian bytes"))
    async def infer(request: Request) -> Response:
        body = await request.body()
        async with pool.admit():
            payload, binary, x = await pool.run(decode_v2, body, request.headers.get(HEADER_LENGTH), size=len(body))
            out = await batcher.run(x)
            # ~20 bytes of JSON a value; raw bytes when the binary extension asks for them
            return await pool.run(infer_response, payload, model.name, "output", out, binary,
                                  size=out.nbytes if binary else out.size * 20)

    app.include_router(models, prefix="/v2/models/{name}", dependencies=[Depends(known_model)])
    app.include_router(models, prefix="/v2/models/{name}/versions/{version}", dependencies=[Depends(known_version)])

    @app.post("/predict", response_class=JSONResponse, responses=POST_ERRORS,
              openapi_extra=body_schema(raw_request(fields), f"raw inputs: one of {', '.join(fields)}"))
    async def predict(request: Request) -> Response:
        """Raw inputs in (features, pixels, a base64 image, values or text); labels and probabilities out."""
        body = await request.body()
        async with pool.admit():
            # always on the pool: a small body may hold a PNG that decodes to millions of pixels
            x = await pool.run(lambda: raw_inputs(model, parse_json(body)))
            out = await batcher.run(x)
            return await pool.run(lambda: JSONResponse({"model": model.name, "engine": model.engine,
                                                        "predictions": model.decode(out)}))

    @app.post("/explain", response_class=JSONResponse, responses=POST_ERRORS,
              openapi_extra=body_schema(raw_request(fields, explain=True), "one raw input (as for /predict) and an "
                                        "attribution method"))
    async def explain(request: Request) -> Response:
        """Attribution for one raw input (as for /predict), with a heat-map overlay for images."""
        body = await request.body()
        async with pool.admit():
            return await pool.run(explain_now, body)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
