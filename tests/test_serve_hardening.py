"""The inference server under hostile, malformed, slow, large and too many requests: never a
5xx on input, limits enforced while bodies stream in, health answered while the model is busy,
the whole Open Inference Protocol v2 (versions, the binary tensor extension, NVIDIA's
tritonclient), optional API keys, property tests over the request models, and a schemathesis
run over /openapi.json."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from sklearn.datasets import load_digits

import netwright
from netwright.deploy.guard import MAX_BODY, server_config
from netwright.deploy.protocol import DATATYPES
from netwright.deploy.server import MAX_PIXELS, create_app

V2 = "/v2/models/digits/infer"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    spec = {"data": {"name": "digits"}, "model": {"name": "cnn", "channels": [8, 16], "hidden": [32]},
            "train": {"epochs": 3, "threads": 1}}
    return netwright.train(spec, name="digits", runs_dir=tmp_path_factory.mktemp("runs"), progress="quiet")


@pytest.fixture(scope="module")
def client(run):
    with TestClient(create_app(run, api_key="")) as c:
        yield c


@contextlib.contextmanager
def serving(app, **config):
    """``app`` on a real uvicorn server (the configuration ``netwright serve`` uses) on a free port."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(server_config(app, "127.0.0.1", port, **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if not thread.is_alive() or time.time() > deadline:
            pytest.fail("the server did not start")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def png(size: int, mode: str = "L") -> str:
    buf = io.BytesIO()
    Image.new(mode, (size, size), 7).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def tensor(x: np.ndarray, **extra) -> dict:
    return {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()}],
            **extra}


def one(shape=(1, 1, 8, 8), datatype="FP32", data=None, **fields) -> dict:
    return {"inputs": [{"name": "input", "shape": list(shape), "datatype": datatype,
                        "data": [0] * 64 if data is None else data, **fields}]}


HOSTILE = [
    ("nested JSON", V2, b"[" * 100_000, 400, "nested too deeply"),
    ("nested JSON, /predict", "/predict", b'{"pixels": ' + b"[" * 100_000, 400, "nested too deeply"),
    ("datatype a list", V2, one(datatype=["FP32"]), 400, "datatype ['FP32'] is not supported"),
    ("input not an object", V2, {"inputs": [1]}, 400, "inputs[0] must be a JSON object"),
    ("bool in shape", V2, one(shape=[True, 1, 8, 8]), 400, "shape must be a list of positive integers"),
    ("INT64 overflow", V2, one(datatype="INT64", data=[2**70] + [0] * 63), 400, "outside INT64's range"),
    ("INT32 overflow", V2, one(datatype="INT32", data=[2**40] + [0] * 63), 400, "outside INT32's range"),
    ("INT64 fraction", V2, one(datatype="INT64", data=[0.5] * 64), 400, "whole numbers"),
    ("data not numbers", V2, one(data=[{"a": 1}] * 64), 400, "must be a list (flat or nested) of numbers"),
    ("data strings", V2, one(data=["1"] * 64), 400, "of numbers"),
    ("ragged data", V2, one(data=[[0] * 32, [0] * 31]), 400, "of numbers"),
    ("huge float", V2, one(data=[1e300] * 64), 400, "NaN or infinity"),
    ("id not a string", V2, {**one(), "id": 5}, 400, "id must be a string"),
    ("unknown output", V2, {**one(), "outputs": [{"name": "probs"}]}, 400, "unknown output 'probs'"),
    ("binary flag not a bool", V2, {**one(), "parameters": {"binary_data_output": "yes"}}, 400, "true or false"),
    ("image 20000x20000", "/predict", {"image": png(20_000, "1")}, 413, f"the limit is {MAX_PIXELS} pixels"),
    ("image over our limit", "/predict", {"image": png(4100, "1")}, 413, "4100x4100 pixels"),
    ("truncated PNG", "/predict", {"image": png(64)[:60]}, 400, "could not be decoded"),
    ("a server path as text", "/predict", {"text": "/etc/passwd"}, 400, "not text"),
    ("over-long integer", "/predict", b'{"pixels": [[1' + b"0" * 5000 + b"]]}", 400, "malformed JSON"),
    ("overflowing pixels", "/predict", {"pixels": [[2**1100]]}, 400, "not numbers"),
    ("explain method a list", "/explain", {"pixels": [[0] * 8] * 8, "method": ["saliency"]}, 400, "method must be"),
]


@pytest.mark.parametrize("name,path,body,status,message", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_input_gets_a_4xx_naming_the_problem(client, name, path, body, status, message):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = client.post(path, content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert message in r.json()["error"] and "\n" not in r.json()["error"]
    assert client.post(V2, json=one()).status_code == 200  # and it keeps serving


def raw_http(port: int, head: bytes, timeout: float = 10) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(head)
    return s


def read_all(s: socket.socket) -> bytes:
    chunks = []
    while chunk := s.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_chunked_upload_is_cut_off_at_the_limit_while_it_streams(run):
    """No Content-Length: the server counts the bytes as they come and answers 413 (and closes)
    once past the limit, though the client never finishes its body."""
    with serving(create_app(run, api_key="")) as port:
        s = raw_http(port, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n" % 65536 + b"[" * 65536 + b"\r\n"
        for _ in range(MAX_BODY // 65536):
            s.sendall(chunk)
        # one byte past the limit, as its own chunk: the server reads every byte sent before it
        # answers, so it closes with nothing unread (a close with unread bytes is a TCP reset,
        # which can destroy the answer before this client reads it)
        s.sendall(b"1\r\n[\r\n")
        reply = read_all(s)
        assert reply.startswith(b"HTTP/1.1 413") and b"the limit is" in reply
        assert httpx.get(f"http://127.0.0.1:{port}/v2/health/live").status_code == 200


def test_slow_clients_are_closed(run):
    """A body slower than body_timeout_s gets 408; headers slower than header_timeout_s, a closed connection."""
    with serving(create_app(run, api_key="", body_timeout_s=0.5), header_timeout_s=0.5) as port:
        s = raw_http(port, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"pix")
        reply = read_all(s)
        assert reply.startswith(b"HTTP/1.1 408") and b"did not arrive within 0.5 s" in reply
        s = raw_http(port, b"POST /predict HTTP/1.1\r\nHost: x\r\n")
        for _ in range(4):  # a header every 0.2 s: no single gap is long, the headers never end
            time.sleep(0.2)
            with contextlib.suppress(OSError):
                s.sendall(b"X-Slow: 1\r\n")
        assert read_all(s) == b""  # closed without an answer


def test_a_full_queue_answers_503_with_retry_after(run):
    app = create_app(run, api_key="", workers=1, queue=0)
    body = json.dumps({"image": png(3000)}).encode()

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return await asyncio.gather(*(c.post("/predict", content=body) for _ in range(8)))

    replies = asyncio.run(burst())
    busy = [r for r in replies if r.status_code == 503]
    assert busy and {r.status_code for r in replies} == {200, 503}
    assert busy[0].headers["retry-after"] == "1" and "busy" in busy[0].json()["error"]


def test_health_and_metrics_answer_while_the_model_is_busy(run):
    """Twenty-four clients keep posting 4000x4000 PNGs and big tensors; health and /metrics answer
    while they do (how quickly is measured by benchmarks/serve_load.py --png-clients: health p99
    27 ms there)."""
    x = run.load_data().test.x.numpy()
    big_png = json.dumps({"image": png(4000)}).encode()
    big_v2 = json.dumps(tensor(np.tile(x, (2, 1, 1, 1))[:700])).encode()
    assert len(big_v2) < MAX_BODY
    with serving(create_app(run, api_key="")) as port:
        url, stop, statuses = f"http://127.0.0.1:{port}", threading.Event(), []

        posting = []  # one entry a request on its way, taken off when it is answered

        def load(path: str, body: bytes) -> None:
            with httpx.Client(base_url=url, timeout=60) as c:
                while not stop.is_set():
                    posting.append(path)
                    statuses.append(c.post(path, content=body).status_code)
                    posting.pop()

        with ThreadPoolExecutor(24) as pool:
            for i in range(24):
                pool.submit(load, *(("/predict", big_png) if i % 3 else (V2, big_v2)))
            time.sleep(1.0)
            answered = []
            with httpx.Client(base_url=url, timeout=10) as c:
                for path in ["/v2/health/ready", "/v2/health/live", "/metrics"] * 8:
                    answered.append((c.get(path).status_code, len(posting)))
                    time.sleep(0.05)
            stop.set()
        assert statuses and set(statuses) <= {200, 503} and 200 in statuses
        assert [code for code, _ in answered] == [200] * 24
        # each was answered while big requests were on their way (the model and the decoders busy)
        assert min(waiting for _, waiting in answered) > 0


def test_versioned_routes_serve_the_listed_version_only(client):
    assert client.get("/v2/models/digits").json()["versions"] == ["1"]
    assert client.get("/v2/models/digits/versions/1").json() == client.get("/v2/models/digits").json()
    assert client.get("/v2/models/digits/versions/1/ready").json() == {"name": "digits", "ready": True}
    plain, versioned = (client.post(p, json=one(data=list(range(64)))) for p in (V2, "/v2/models/digits/versions/1/infer"))
    assert versioned.status_code == 200 and versioned.json() == plain.json()
    for r in (client.get("/v2/models/digits/versions/2"), client.post("/v2/models/digits/versions/2/infer", json=one())):
        assert r.status_code == 404 and r.json()["error"] == "unknown version '2' of model 'digits'; this server serves version 1"
    assert "binary_tensor_data" in client.get("/v2").json()["extensions"]


def binary_request(x: np.ndarray, datatype: str = "FP32", **extra) -> tuple[bytes, dict]:
    header = json.dumps({"inputs": [{"name": "input", "shape": list(x.shape), "datatype": datatype,
                                     "parameters": {"binary_data_size": x.nbytes}}], **extra}).encode()
    return header + x.astype(x.dtype.newbyteorder("<")).tobytes(), {"Inference-Header-Content-Length": str(len(header))}


def test_binary_tensor_extension_by_hand(client, run):
    x = run.load_data().test.x.numpy()[:3]
    expected = np.array(client.post(V2, json=tensor(x)).json()["outputs"][0]["data"]).reshape(3, 10)
    body, headers = binary_request(x)
    r = client.post(V2, content=body, headers=headers)  # binary in, JSON out
    assert r.status_code == 200 and np.allclose(r.json()["outputs"][0]["data"], expected.reshape(-1), atol=1e-6)
    body, headers = binary_request(x.astype(np.float64), "FP64", parameters={"binary_data_output": True})
    r = client.post(V2, content=body, headers=headers)  # binary in, binary out
    n = int(r.headers["inference-header-content-length"])
    out = json.loads(r.content[:n])["outputs"][0]
    assert out["parameters"]["binary_data_size"] == 3 * 10 * 4 and "data" not in out
    assert np.allclose(np.frombuffer(r.content[n:], "<f4").reshape(out["shape"]), expected, atol=1e-6)
    bad = [(b"[]", {"Inference-Header-Content-Length": "99"}, "Inference-Header-Content-Length '99'"),
           (body[:-4], headers, "takes 1536 bytes, and 1532 follow"),
           (json.dumps(one()).encode() + b"xx", {"Inference-Header-Content-Length": str(len(json.dumps(one())))},
            "2 bytes follow the JSON request"),
           (*binary_request(np.zeros((1, 1, 8, 8), np.int64), "BYTES"), "datatype 'BYTES' is not supported")]
    for content, h, message in bad:
        r = client.post(V2, content=content, headers=h)
        assert r.status_code == 400 and message in r.json()["error"], r.text


def test_tritonclient_json_and_binary_plain_and_versioned_equal_predict(run):
    import tritonclient.http as triton

    images = load_digits().images[:4]
    from netwright.data.inputs import encode_inputs

    x = encode_inputs(run.info, images, "pixels").astype(np.float32)
    with serving(create_app(run, api_key="")) as port:
        predicted = httpx.post(f"http://127.0.0.1:{port}/predict", json={"pixels": images.tolist()}).json()["predictions"]
        c = triton.InferenceServerClient(f"127.0.0.1:{port}")
        assert c.is_server_live() and c.is_model_ready("digits") and c.is_model_ready("digits", "1")
        assert c.get_model_metadata("digits", "1")["inputs"][0]["shape"] == [-1, 1, 8, 8]
        for binary_in in (False, True):
            for version in ("", "1"):
                for outputs in (None, [triton.InferRequestedOutput("output", binary_data=False)]):
                    inp = triton.InferInput("input", list(x.shape), "FP32")
                    inp.set_data_from_numpy(x, binary_data=binary_in)
                    out = c.infer("digits", [inp], model_version=version, outputs=outputs).as_numpy("output")
                    p = np.exp(out - out.max(1, keepdims=True))
                    p /= p.sum(1, keepdims=True)
                    for row, pred in zip(p, predicted):
                        assert np.abs(row - list(pred["probabilities"].values())).max() <= 1e-5
        with pytest.raises(triton.InferenceServerException, match="unknown version '7'"):
            c.infer("digits", [inp], model_version="7")
        c.close()


def test_api_key_guards_everything_but_health(run, monkeypatch):
    with TestClient(create_app(run, api_key="s3cret")) as c:
        assert c.get("/v2/health/ready").status_code == 200 and c.get("/v2/health/live").status_code == 200
        for r in (c.post(V2, json=one()), c.get("/v2/models/digits"), c.get("/metrics"),
                  c.post(V2, json=one(), headers={"Authorization": "Bearer wrong"})):
            assert r.status_code == 401 and "Authorization: Bearer KEY" in r.json()["error"]
        assert c.post(V2, json=one(), headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.post(V2, json=one(), headers={"X-API-Key": "s3cret"}).status_code == 200
    monkeypatch.setenv("NETWRIGHT_API_KEY", "from-env")
    with TestClient(create_app(run)) as c:
        assert c.get("/v2/models/digits").status_code == 401
        assert c.get("/v2/models/digits", headers={"X-API-Key": "from-env"}).status_code == 200


def test_serve_command_takes_an_api_key_from_a_file(run, tmp_path):
    """A key given on the command line shows in 'ps'; from a file (or NETWRIGHT_API_KEY) it does not."""
    from test_serve import start

    (tmp_path / "key").write_text("k3y\n")
    proc, url = start(run, "--api-key-file", str(tmp_path / "key"))
    try:
        assert httpx.get(url + "/v2/models/digits").status_code == 401
        assert httpx.get(url + "/v2/models/digits", headers={"Authorization": "Bearer k3y"}).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


# ---------------------------------------------------------------------- property tests

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                    max_leaves=12)
SHAPES = st.lists(st.integers(-1, 70) | st.booleans() | JSON, max_size=5) | JSON
NEAR_SHAPES = st.integers(1, 3).map(lambda n: [n, 1, 8, 8])
TENSORS = st.fixed_dictionaries({}, optional={
    "name": st.sampled_from(["input", "x"]) | JSON,
    "shape": NEAR_SHAPES | SHAPES,
    "datatype": st.sampled_from([*DATATYPES, "BYTES", "FP16"]) | JSON,
    "data": st.lists(st.floats() | st.integers(-2**70, 2**70) | st.booleans(), min_size=60, max_size=200) | JSON,
    "parameters": st.fixed_dictionaries({}, optional={"binary_data_size": st.integers(-1, 2000) | JSON}) | JSON})
V2_REQUESTS = st.fixed_dictionaries({}, optional={
    "inputs": st.lists(TENSORS | JSON, max_size=2) | JSON, "id": st.text(max_size=4) | JSON,
    "outputs": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["output", "y"]) | JSON}, optional={
        "parameters": st.fixed_dictionaries({}, optional={"binary_data": st.booleans() | JSON}) | JSON}), max_size=2) | JSON,
    "parameters": st.fixed_dictionaries({}, optional={"binary_data_output": st.booleans() | JSON}) | JSON}) | JSON
PIXELS = st.lists(st.lists(st.floats(-1e3, 1e3) | st.integers(-2**70, 2**70), min_size=8, max_size=8),
                  min_size=7, max_size=9)
RAW_REQUESTS = st.fixed_dictionaries({}, optional={
    "pixels": PIXELS | JSON, "values": JSON, "features": JSON, "text": st.text(max_size=8) | JSON,
    "image": st.sampled_from([png(4), png(9, "RGB"), "bm90IGFuIGltYWdl", "data:image/png;base64,"]) | JSON,
    "method": st.sampled_from(["saliency", "integrated_gradients", "shap"]) | JSON}) | JSON
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


def assert_answered(r: httpx.Response) -> None:
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert r.json()["error"]


@PROPERTY
@given(request=V2_REQUESTS, tail=st.binary(max_size=64),
       header=st.none() | st.text("0123456789- x", max_size=5) | st.just("9" * 5000) | st.just("\u00b2")
       | st.text(st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), max_size=8))
def test_v2_infer_never_answers_5xx(client, request, header, tail):
    body = json.dumps(request).encode()  # NaN and Infinity included
    headers = {"Content-Type": "application/json"}
    if header is not None:
        # as bytes: any latin-1 header value a client can send, superscript digits included
        body, headers["Inference-Header-Content-Length"] = body + tail, (header or str(len(body))).encode("latin-1")
    for path in (V2, "/v2/models/digits/versions/1/infer"):
        assert_answered(client.post(path, content=body, headers=headers))


@PROPERTY
@given(request=RAW_REQUESTS)
def test_predict_and_explain_never_answer_5xx(client, request):
    body = json.dumps(request).encode()
    for path in ("/predict", "/explain"):
        assert_answered(client.post(path, content=body, headers={"Content-Type": "application/json"}))


def test_tabular_predict_never_answers_5xx():
    run = netwright.train({"data": {"name": "iris"}, "model": {"name": "mlp", "hidden": [8]},
                           "train": {"epochs": 1, "threads": 1}}, name="iris", progress="quiet")
    names = run.info.feature_names
    rows = st.fixed_dictionaries({}, optional={n: st.floats() | st.text(max_size=4) | JSON for n in names})
    with TestClient(create_app(run, engine="torch", api_key="")) as c:
        @PROPERTY
        @given(features=rows | st.lists(rows, max_size=3) | JSON)
        def check(features):
            assert_answered(c.post("/predict", content=json.dumps({"features": features}),
                                   headers={"Content-Type": "application/json"}))

        check()


# ---------------------------------------------------------------------- schemathesis


def test_openapi_schema_conforms_under_schemathesis(run):
    """Every documented operation, every phase schemathesis runs (examples, coverage, fuzzing,
    stateful), its default checks: no failure. Left out: positive_data_acceptance, since a body
    the schema allows still needs data to match its shape and the model's input, which JSON
    Schema cannot say."""
    import schemathesis
    from schemathesis.config import SchemathesisConfig
    from schemathesis.engine import Status, events

    config = SchemathesisConfig.from_dict({"generation": {"max-examples": 20},
                                           "checks": {"positive_data_acceptance": {"enabled": False}}})
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(run, api_key=""), config=config)
    stream = list(schemathesis.engine.from_schema(schema).execute())
    assert isinstance(stream[-1], events.EngineFinished)
    errors = [e for e in stream if isinstance(e, (events.NonFatalError, events.FatalError))]
    assert not errors, errors
    scenarios = [e for e in stream if isinstance(e, events.ScenarioFinished)]
    checks = [(e.label, c) for e in scenarios for case in e.recorder.checks.values() for c in case]
    failed = [(label, c.name, str(c.failure_info)[:300]) for label, c in checks if c.status == Status.FAILURE]
    assert not failed and not stream[-1].failures, failed
    assert len(checks) > 1000 and {"POST /predict", f"POST {V2.replace('digits', '{name}')}"} <= {
        label for label, c in checks if c.name == "response_schema_conformance"}


# ---------------------------------------------------------------------- what the server accepts at all

def encoded(fmt: str, mode: str = "L") -> str:
    buf = io.BytesIO()
    Image.new(mode, (16, 16), 7).save(buf, fmt)
    return base64.b64encode(buf.getvalue()).decode()


@pytest.mark.parametrize("fmt", ["EPS", "TIFF", "ICO", "BMP", "GIF", "WEBP"])
def test_an_image_neither_png_nor_jpeg_gets_415_before_any_decoder_sees_it(client, fmt, monkeypatch):
    """Told by its first bytes: an EPS would otherwise reach Pillow's Ghostscript plugin."""
    from PIL import Image as PILImage

    opened = []
    monkeypatch.setattr(PILImage, "open", lambda *a, **k: opened.append(a) or pytest.fail("a decoder was called"))
    r = client.post("/predict", json={"image": encoded(fmt, "RGB" if fmt in ("EPS", "WEBP") else "L")})
    assert r.status_code == 415 and "is not a PNG or JPEG" in r.json()["error"], r.text
    assert "\n" not in r.json()["error"] and not opened


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_png_and_jpeg_uploads_are_predicted(client, fmt):
    r = client.post("/predict", json={"image": encoded(fmt)})
    assert r.status_code == 200 and r.json()["predictions"][0]["label"] in {str(d) for d in range(10)} | set(range(10))


@pytest.mark.parametrize("content_type, status", [
    ("text/plain", 415), ("application/x-www-form-urlencoded", 415), ("multipart/form-data; boundary=x", 415),
    ("application/xml", 415), ("application/json", 200), ("application/json; charset=utf-8", 200), (None, 200)])
def test_only_json_bodies_are_read(client, content_type, status):
    """A page on another site may POST text/plain or a form here without asking the browser first;
    those (and other non-JSON types) get 415 with the fix."""
    headers = {} if content_type is None else {"Content-Type": content_type}
    r = client.post("/predict", content=json.dumps({"pixels": [[0] * 8] * 8}), headers=headers)
    assert r.status_code == status, r.text
    if status == 415:
        assert "send the body as application/json" in r.json()["error"]


def test_a_host_header_that_is_not_ours_is_refused(run):
    from netwright.stages.serve import default_hosts

    assert default_hosts("127.0.0.1", None) == ("localhost", "127.0.0.1", "::1", "127.0.0.1")
    assert default_hosts("0.0.0.0", None) is None and default_hosts("0.0.0.0", ["models.example"])[0] == "models.example"
    with TestClient(create_app(run, allowed_hosts=default_hosts("127.0.0.1", None))) as c:
        for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST"):
            assert c.get("/v2/models/digits", headers={"Host": host}).status_code == 200, host
        r = c.post(V2, json=one(), headers={"Host": "attacker.example:8000"})
        assert r.status_code == 400 and "Host 'attacker.example' is not served here" in r.json()["error"]
        assert "--allowed-host" in r.json()["error"]


def test_the_openapi_schema_offers_what_the_model_takes(client):
    paths = client.get("/openapi.json").json()["paths"]
    predict = paths["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(predict["properties"]) == {"image", "pixels"}  # an image model: no text, no features
    infer = paths["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    tensor = infer["properties"]["inputs"]["items"]
    import jsonschema

    base = {"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32"}
    jsonschema.validate({**base, "data": [0] * 64}, tensor)
    jsonschema.validate({**base, "parameters": {"binary_data_size": 256}}, tensor)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(base, tensor)  # no values at all
