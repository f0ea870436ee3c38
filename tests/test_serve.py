"""The inference server, started for real on a loopback port: protocol round trips, every
kind of bad request (answered 4xx, the server still healthy after), graceful shutdown, and
the web page driven in headless Chromium."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import netwright
from conftest import needs_packages


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(run: netwright.Run, *extra: str):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "netwright", "serve", str(run.path), "--port", str(port), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            if httpx.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"server did not start: {proc.stderr.read()}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    spec = {"data": {"name": "digits"}, "model": {"name": "cnn", "channels": [8, 16], "hidden": [32]},
            "train": {"epochs": 3, "threads": 1}}
    run = netwright.train(spec, name="digits", runs_dir=tmp_path_factory.mktemp("runs"), progress="quiet")
    proc, url = start(run)
    yield run, url
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0  # graceful shutdown


def test_concurrent_requests_are_batched_and_each_answer_equals_the_unbatched_one(digits):
    """64 requests of 1-3 rows sent at once to the batching server (a 20 ms wait, so they meet):
    each answer equals the same request answered alone by a server with --max-batch 1 (to 1e-5),
    and /metrics shows model calls of more than one request's rows."""
    import asyncio

    run, url = digits
    alone, alone_url = start(run, "--max-batch", "1")
    batched, batched_url = start(run, "--max-wait-ms", "20")
    try:
        x = run.load_data().test.x.numpy()
        sizes = [1 + i % 3 for i in range(64)]
        bodies, start_row = [], 0
        for n in sizes:
            rows = x[start_row:start_row + n]
            start_row += n
            bodies.append({"inputs": [{"name": "input", "shape": list(rows.shape), "datatype": "FP32",
                                       "data": rows.reshape(-1).tolist()}]})

        async def send_all(base: str) -> list[np.ndarray]:
            async with httpx.AsyncClient(timeout=30) as client:
                replies = await asyncio.gather(*(client.post(f"{base}/v2/models/digits/infer", json=b) for b in bodies))
            return [np.array(r.json()["outputs"][0]["data"]).reshape(r.json()["outputs"][0]["shape"]) for r in replies]

        together = asyncio.run(send_all(batched_url))
        one_by_one = [np.array(httpx.post(f"{alone_url}/v2/models/digits/infer", json=b).json()["outputs"][0]["data"])
                      .reshape(n, -1) for b, n in zip(bodies, sizes)]
        for a, b, n in zip(together, one_by_one, sizes):
            assert a.shape == (n, 10) and np.abs(a - b).max() <= 1e-5
        metrics = httpx.get(batched_url + "/metrics").text
        calls = float(next(line.split()[-1] for line in metrics.splitlines() if line.startswith("netwright_batch_rows_count")))
        rows = float(next(line.split()[-1] for line in metrics.splitlines() if line.startswith("netwright_batch_rows_sum")))
        assert rows == sum(sizes) and calls < len(sizes) / 2  # requests shared model calls
    finally:
        for proc in (alone, batched):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def test_protocol_round_trips(digits):
    run, url = digits
    assert httpx.get(url + "/v2/health/live").json() == {"live": True}
    meta = httpx.get(url + "/v2/models/digits").json()
    assert meta["platform"] == "onnxruntime" and meta["inputs"][0]["shape"] == [-1, 1, 8, 8]
    x = run.load_data().test.x[:5]
    body = {"id": "r1", "inputs": [{"name": "input", "shape": [5, 1, 8, 8], "datatype": "FP32",
                                    "data": x.reshape(-1).tolist()}]}
    r = httpx.post(url + "/v2/models/digits/infer", json=body)
    assert r.status_code == 200 and r.json()["id"] == "r1"
    out = r.json()["outputs"][0]
    with torch.no_grad():
        expected = run.load_model()(x).numpy()
    assert out["shape"] == [5, 10]
    assert np.abs(np.array(out["data"]).reshape(5, 10) - expected).max() <= 1e-4
    images = load_digits().images[:3]
    r = httpx.post(url + "/predict", json={"pixels": images.tolist()})
    assert [p["label"] for p in r.json()["predictions"]] == [p["label"] for p in netwright.predict(run, images)]
    e = httpx.post(url + "/explain", json={"pixels": images[0].tolist(), "method": "integrated_gradients"}).json()
    assert e["method"] == "integrated_gradients" and np.array(e["attribution"]).shape == (1, 8, 8)
    assert e["overlay_png"] and e["prediction"]["label"] == r.json()["predictions"][0]["label"]
    page = httpx.get(url + "/").text
    assert "<canvas id=draw" in page and "http" not in page.split("<main>")[1].split("API:")[0]
    assert httpx.get(url + "/openapi.json").json()["paths"]["/predict"]
    metrics = httpx.get(url + "/metrics").text
    assert 'netwright_requests_total{route="/predict",status="200"}' in metrics
    assert "netwright_request_seconds_bucket" in metrics


BAD = [
    ("malformed JSON", "/predict", b'{"pixels": [[1, 2', 400, "malformed JSON"),
    ("NaN", "/predict", b'{"pixels": [[NaN]]}', 400, "NaN"),
    ("wrong shape", "/predict", json.dumps({"pixels": [[1, 2], [3, 4]]}).encode(), 400, "must have shape (1, 8, 8)"),
    ("missing field", "/predict", b"{}", 400, "expected one of the fields"),
    ("text instead of numbers", "/predict", json.dumps({"pixels": [["a"] * 8] * 8}).encode(), 400, "not numbers"),
    ("bad image", "/predict", json.dumps({"image": "bm90IGFuIGltYWdl"}).encode(), 415, "is not a PNG or JPEG"),
    ("v2 wrong shape", "/v2/models/digits/infer", json.dumps({"inputs": [{"name": "input", "shape": [1, 8, 8],
     "datatype": "FP32", "data": [0] * 64}]}).encode(), 400, "does not fit"),
    ("v2 wrong dtype", "/v2/models/digits/infer", json.dumps({"inputs": [{"name": "input", "shape": [1, 1, 8, 8],
     "datatype": "BYTES", "data": ["x"] * 64}]}).encode(), 400, "datatype 'BYTES'"),
    ("v2 missing field", "/v2/models/digits/infer", json.dumps({"inputs": [{"name": "input", "shape": [1, 1, 8, 8],
     "datatype": "FP32"}]}).encode(), 400, "missing the field 'data'"),
    ("v2 every wrong field", "/v2/models/digits/infer", json.dumps({"id": 7, "inputs": [{"name": "x", "shape": [1, 8, 8],
     "datatype": "BYTES"}]}).encode(), 400, "id must be a string; inputs[0] is missing the field 'data'; unknown input "
     "'x'; this model's input is 'input'; datatype 'BYTES' is not supported; use FP32, FP64, INT64, INT32; shape "
     "[1, 8, 8] does not fit"),
    ("v2 count mismatch", "/v2/models/digits/infer", json.dumps({"inputs": [{"name": "input", "shape": [1, 1, 8, 8],
     "datatype": "FP32", "data": [0] * 10}]}).encode(), 400, "needs 64"),
    ("unknown model", "/v2/models/nope/infer", b"{}", 404, "unknown model 'nope'"),
    ("too large", "/predict", b"[" + b"0," * 600_000 + b"0]", 413, "limit"),
    ("unknown route", "/nowhere", b"{}", 404, ""),
    ("explain method", "/explain", json.dumps({"pixels": [[0] * 8] * 8, "method": "shap"}).encode(), 400, "not offered"),
]


@pytest.mark.parametrize("name,path,body,status,message", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_a_4xx_and_the_server_lives_on(digits, name, path, body, status, message):
    _, url = digits
    r = httpx.post(url + path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert message in r.json()["error"]
    assert httpx.get(url + "/v2/health/live").status_code == 200


def test_tabular_server_takes_named_features(tmp_path):
    run = netwright.train({"data": {"name": "iris"}, "model": {"name": "mlp", "hidden": [8]},
                           "train": {"epochs": 2, "threads": 1}}, name="iris", progress="quiet")
    proc, url = start(run, "--engine", "torch")
    try:
        features = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4, "petal width (cm)": 0.2}
        r = httpx.post(url + "/predict", json={"features": features})
        assert r.status_code == 200 and r.json()["engine"] == "torch"
        assert r.json()["predictions"][0]["label"] == netwright.predict(run, {k: [v] for k, v in features.items()})[0]["label"]
        r = httpx.post(url + "/predict", json={"features": {"sepal length (cm)": 5.1}})
        assert r.status_code == 400 and "missing feature(s)" in r.json()["error"]
        assert 'name="petal width (cm)"' in httpx.get(url + "/").text
        e = httpx.post(url + "/explain", json={"features": features}).json()
        assert len(e["top_features"]) == 4
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0


def test_serve_binds_loopback_by_default():
    from typer.testing import CliRunner

    from netwright.cli import app

    help_text = CliRunner().invoke(app, ["serve", "--help"]).output
    assert "127.0.0.1" in help_text


def test_unknown_run_and_busy_port_are_clear_errors(cli, digits):
    from conftest import assert_one_line_error

    run, url = digits
    assert_one_line_error(cli("serve", "runs/none"), "no such run directory")
    assert_one_line_error(cli("serve", run.path, "--port", url.rsplit(":", 1)[1]), "pick another --port")
    assert_one_line_error(cli("serve", run.path, "--engine", "tvm"), "choose auto, onnx or torch")


@pytest.mark.slow
@needs_packages("chromium")
def test_page_in_a_real_browser(digits, tmp_path: Path):
    """Headless Chromium draws a digit on the canvas, submits, and reads a prediction and an overlay;
    then uploads a photo and reads the prediction the server gives for it."""
    exe = shutil.which("chromium")
    from playwright.sync_api import sync_playwright

    _, url = digits
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1000, "height": 800})
        page.goto(url + "/")
        box = page.locator("#draw").bounding_box()
        page.mouse.move(box["x"] + 140, box["y"] + 40)
        page.mouse.down()
        for i in range(1, 21):
            page.mouse.move(box["x"] + 140, box["y"] + 40 + 10 * i)
        page.mouse.up()
        with page.expect_request(lambda r: r.url.endswith("/predict")) as sent:
            page.click("#predict")
        page.wait_for_function("document.getElementById('overlay').src.startsWith('data:image/png')", timeout=30000)
        label = page.text_content("#label")
        # the page shows the server's answer for the image it sent (the same request, replayed here)
        replayed = httpx.post(url + "/predict", content=sent.value.post_data,
                              headers={"Content-Type": "application/json"}).json()["predictions"][0]
        assert label == replayed["label"]
        assert page.locator("#bars .bar").count() == 10
        assert page.locator("#overlay").evaluate("i => i.naturalWidth > 0")
        page.screenshot(path=str(tmp_path / "page.png"))
        # an uploaded photo (a colour PNG of another size) is sent and answered the same way
        from PIL import Image

        photo = tmp_path / "photo.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(photo)
        page.evaluate("document.getElementById('label').textContent = '-'")
        with page.expect_request(lambda r: r.url.endswith("/predict")) as sent:
            page.set_input_files("#upload", str(photo))
        page.wait_for_function("document.getElementById('label').textContent !== '-'", timeout=30000)
        replayed = httpx.post(url + "/predict", content=sent.value.post_data,
                              headers={"Content-Type": "application/json"}).json()["predictions"][0]
        assert page.text_content("#label") == replayed["label"]
        browser.close()


def test_requests_that_arrive_while_the_model_computes_go_together_next():
    """A busy model's queue goes to it in one call when it is free (up to max_batch rows), each
    request gets its own rows, a request of another shape waits for its own call, and a request
    whose client went away is left out."""
    import asyncio
    import time as clock

    from netwright.deploy.batching import Batcher

    calls: list[int] = []

    def model(x: np.ndarray) -> np.ndarray:
        clock.sleep(0.05)
        return x * 2

    async def scenario() -> list:
        batcher = Batcher(model, max_batch=8, max_wait_s=0.0, observe=calls.append)
        first = asyncio.ensure_future(batcher.run(np.full((1, 3), 1.0)))
        await asyncio.sleep(0.01)  # the model is computing the first request now
        rows = [np.full((1 + i % 2, 3), float(i)) for i in range(6)]  # 9 rows; whole requests of 7 fit in 8
        later = [asyncio.ensure_future(batcher.run(r)) for r in rows]
        other = asyncio.ensure_future(batcher.run(np.ones((1, 5))))
        gone = asyncio.ensure_future(batcher.run(np.ones((1, 3))))
        await asyncio.sleep(0)
        gone.cancel()
        out = await asyncio.gather(first, *later, other)
        batcher.close()
        return [rows, out]

    rows, out = asyncio.run(scenario())
    assert np.array_equal(out[0], np.full((1, 3), 2.0))
    for r, o in zip(rows, out[1:7]):
        assert np.array_equal(o, r * 2)
    assert np.array_equal(out[7], np.full((1, 5), 2.0))
    assert calls == [1, 7, 2, 1]  # the lone first; the first 7 queued rows; the last request; the other shape


def dated_table(folder: Path) -> Path:
    """A table with a date, a category and a number column (and a few blanks), the label planted."""
    rng = np.random.default_rng(0)
    lines = ["signup,plan,spend,age,left"]
    for i in range(240):
        month, spend, plan = int(rng.integers(1, 13)), float(rng.lognormal(3, 0.5)), ["basic", "pro"][i % 2]
        left = int(month > 6) ^ int(plan == "pro" and spend > 25)
        day = "" if i % 40 == 3 else f"2024-{month:02d}-{int(rng.integers(1, 28)):02d}"
        lines.append(f"{day},{plan},{spend:.2f},{int(rng.integers(18, 80))},{left}")
    path = folder / "customers.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_pages_fields_are_the_training_files_columns_with_typical_values(tmp_path: Path):
    """One field per raw column (the date, not its five parts), numbers at the training median,
    the date at the median day, categories as their list."""
    from netwright.data.inputs import field_errors, input_fields

    path = dated_table(tmp_path)
    run = netwright.train({"data": {"name": "csv", "path": str(path), "target": "left"}, "model": {"name": "mlp"},
                           "train": {"epochs": 1, "threads": 1}}, runs_dir=tmp_path / "runs", name="t", progress="quiet")
    fields = {f["name"]: f for f in input_fields(run.info.preprocess)}
    assert list(fields) == ["signup", "plan", "spend", "age"]
    assert fields["signup"]["type"] == "date" and fields["signup"]["default"].startswith("2024-")
    assert fields["plan"] == {"name": "plan", "type": "category", "choices": ["basic", "pro"], "default": "basic"}
    train_rows = run.load_data().train  # the median of the training split's raw spend
    spend = np.asarray([float(line.split(",")[2]) for line in path.read_text().splitlines()[1:]])
    assert fields["spend"]["type"] == "number" and spend.min() < fields["spend"]["default"] < spend.max()
    assert len(train_rows) > 100
    errors = field_errors(run.info.preprocess, {"signup": ["2024-01-02"], "plan": ["pro"], "spend": ["lots"],
                                                "age": ["old"]}, "features")
    assert [e.split("'")[1] for e in errors] == ["spend", "age"]


@pytest.mark.slow
@needs_packages("chromium")
def test_the_page_of_a_table_with_dates_categories_and_numbers_predicts_in_a_browser(tmp_path: Path):
    """Headless Chromium opens the served page of a table run, submits the form as it comes (the
    typical values), then with a date, a category and a number changed, and shows a prediction each
    time: the one the server gives for the request the page sent."""
    exe = shutil.which("chromium")
    from playwright.sync_api import sync_playwright

    path = dated_table(tmp_path)
    run = netwright.train({"data": {"name": "csv", "path": str(path), "target": "left"}, "model": {"name": "mlp"},
                           "train": {"epochs": 2, "threads": 1}}, runs_dir=tmp_path / "runs", name="t", progress="quiet")
    proc, url = start(run)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
            page = browser.new_page()
            page.goto(url + "/")
            for change in (None, {"signup": "2024-11-05", "plan": "pro", "spend": "31.5"}):
                if change:
                    page.fill("input[name=signup]", change["signup"])
                    page.select_option("select[name=plan]", change["plan"])
                    page.fill("input[name=spend]", change["spend"])
                page.evaluate("document.getElementById('label').textContent = '-'")
                with page.expect_request(lambda r: r.url.endswith("/predict")) as sent:
                    page.click("#predict")
                page.wait_for_function("document.getElementById('label').textContent !== '-'", timeout=30000)
                body = json.loads(sent.value.post_data)
                assert set(body["features"]) == {"signup", "plan", "spend", "age"}, body
                if change:
                    assert {k: body["features"][k] for k in change} == change
                answer = httpx.post(url + "/predict", json=body).json()["predictions"][0]
                assert page.text_content("#label") == answer["label"] and answer["label"] in ("0", "1")
                assert page.text_content("#error") in ("", None)
            browser.close()
        # a request with two wrong fields names both
        bad = httpx.post(url + "/predict", json={"features": {"signup": "2024-01-02", "plan": "pro", "spend": "lots",
                                                              "age": "old"}})
        assert bad.status_code == 400 and "'spend'" in bad.text and "'age'" in bad.text, bad.text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_two_server_processes_on_one_port_answer_the_protocol_as_one_does(digits, tmp_path):
    """serve --workers 2: two processes under the command, both on the port; Open Inference Protocol
    answers through tritonclient and /predict over fresh connections equal the one-process
    server's; SIGTERM stops both and the command exits 0."""
    import tritonclient.http as triton

    run, url = digits
    fresh = tmp_path / "copy" / run.path.name  # the run without its ONNX export: the first process writes it
    shutil.copytree(run.path, fresh, ignore=shutil.ignore_patterns("export", ".lock*"))
    many, many_url = start(netwright.Run.open(fresh), "--workers", "2")
    try:
        assert len(_children(many.pid)) == 2
        images = load_digits().images[:6]
        for i in range(12):  # a fresh connection each time: the kernel spreads them over the processes
            body = {"pixels": images[i % 6:i % 6 + 1].tolist()}
            assert httpx.post(many_url + "/predict", json=body).json() == httpx.post(url + "/predict", json=body).json()
        x = np.asarray(load_digits().images[:4], dtype=np.float32)[:, None] / 16.0
        answers = []
        for where in (url, many_url):
            c = triton.InferenceServerClient(where.removeprefix("http://"))
            assert c.is_server_live() and c.is_model_ready("digits")
            inp = triton.InferInput("input", list(x.shape), "FP32")
            inp.set_data_from_numpy(x, binary_data=True)
            answers.append(c.infer("digits", [inp]).as_numpy("output"))
            c.close()
        np.testing.assert_allclose(answers[0], answers[1], atol=1e-6)
    finally:
        many.send_signal(signal.SIGTERM)
        assert many.wait(timeout=30) == 0
    assert not _children(many.pid)
    serving = [line for line in many.stdout.read().splitlines() if line.startswith("serving")]
    assert len(serving) == 2 and all("(onnxruntime;" in line for line in serving), serving
