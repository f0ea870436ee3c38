"""Load on the inference server: concurrent clients on loopback, bounded in count and time.

Starts ``netwright serve`` on a free loopback port in its own process, twice: without
dynamic batching (``--max-batch 1``) and with it (the defaults), then keeps ``--clients``
keep-alive HTTP/1.1 connections busy for ``--seconds`` from an asyncio client in this process,
and prints throughput, p50/p99 latency and errors per route, and the batched/unbatched ratio.
With ``--png-clients N``, one more phase on the batching server: N more clients post
``--png-size`` square PNGs to /predict while the normal clients run and one client polls
/v2/health/ready every 10 ms; it prints health and infer p99 and the server's RSS before/after.
The model: the demo's digits CNN, or (``--model fashion``) the CNN of examples/fashion_cnn.yaml
(trained for one epoch on 3,000 images: its cost per request is what matters here), unless
``--run`` names one.

With ``--workers 1 2``, the phases are server processes instead (``serve --workers N``, dynamic
batching in each): requests/s and p99 for each count, and the ratio to the first.

    .venv/bin/python benchmarks/serve_load.py [--model digits|fashion] [--run RUN] [--clients 32] [--seconds 10]
        [--png-clients 4 --png-size 12000] [--serve-args "--queue 16"] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import io
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_request(path: str, body: dict | None = None) -> bytes:
    if body is None:
        return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    data = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


async def client(port: int, request: bytes, deadline: float, latencies: list[float], errors: list[str],
                 pause: float = 0.0) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            await asyncio.sleep(pause)
            t0 = time.perf_counter()
            writer.write(request)
            status = (await reader.readline()).split(b" ", 2)[1]
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            if status != b"200":
                errors.append(status.decode())
    except (ConnectionError, asyncio.IncompleteReadError) as e:
        errors.append(type(e).__name__)
    finally:
        writer.close()


def summary(latencies: list[float], errors: list[str], elapsed: float) -> dict:
    lat = np.array(latencies or [float("nan")]) * 1e3
    return {"requests": len(latencies), "rps": len(latencies) / elapsed, "p50": float(np.percentile(lat, 50)),
            "p99": float(np.percentile(lat, 99)), "errors": len(errors), "statuses": dict(collections.Counter(errors))}


async def load(port: int, path: str, body: dict, clients: int, seconds: float) -> dict:
    request = http_request(path, body)
    latencies: list[float] = []
    errors: list[str] = []
    t0 = time.perf_counter()
    await asyncio.gather(*[client(port, request, t0 + seconds, latencies, errors) for _ in range(clients)])
    return summary(latencies, errors, time.perf_counter() - t0)


async def with_pngs(port: int, path: str, body: dict, args: argparse.Namespace) -> list[tuple[str, dict]]:
    """The normal clients, ``--png-clients`` posting big PNGs, one health poll: side by side."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (args.png_size, args.png_size), 7).save(buf, "PNG")
    image = http_request("/predict", {"image": base64.b64encode(buf.getvalue()).decode()})
    phases = [(f"POST {path} ({args.clients} clients)", http_request(path, body), args.clients, 0.0),
              (f"POST /predict {args.png_size}x{args.png_size} PNG ({args.png_clients} clients)", image,
               args.png_clients, 0.0),
              ("GET /v2/health/ready (1 client in this process, every 10 ms)", http_request("/v2/health/ready"), 1,
               0.01)]
    results = [([], []) for _ in phases]
    # the same poll from a process of its own: what the server answers, without this process's
    # 200-connection event loop in the way (a load balancer's health check is another process too)
    probe = subprocess.Popen([sys.executable, "-c", PROBE, str(port), str(args.seconds)], stdout=subprocess.PIPE)
    t0 = time.perf_counter()
    await asyncio.gather(*[client(port, request, t0 + args.seconds, *out, pause=pause)
                           for (_, request, n, pause), out in zip(phases, results) for _ in range(n)])
    elapsed = time.perf_counter() - t0
    probed = json.loads(probe.communicate(timeout=60)[0])
    return [(label, summary(*out, elapsed)) for (label, *_), out in zip(phases, results)] + [
        ("GET /v2/health/ready (1 client in its own process, every 10 ms)", summary(probed, [], elapsed))]


PROBE = """
import http.client, json, sys, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
conn, out, end = http.client.HTTPConnection("127.0.0.1", port, timeout=10), [], time.perf_counter() + seconds
while time.perf_counter() < end:
    t0 = time.perf_counter()
    conn.request("GET", "/v2/health/ready")
    conn.getresponse().read()
    out.append(time.perf_counter() - t0)
    time.sleep(0.01)
print(json.dumps(out))
"""


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024


MODELS = {
    "digits": ("digits_cnn.yaml", []),
    "fashion": ("fashion_cnn.yaml", ["--set", "train.epochs=1", "--set", "data.subset=3000"]),
}


def start(run: str, port: int, extra: list[str]) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "netwright", "serve", run, "--port", str(port), *extra],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1)
            return server
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                sys.exit(f"the server did not start: {server.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run")
    ap.add_argument("--model", choices=list(MODELS), default="digits")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--png-clients", type=int, default=0, help="clients posting big PNGs to /predict meanwhile")
    ap.add_argument("--png-size", type=int, default=12000, help="their PNGs' width and height in pixels")
    ap.add_argument("--serve-args", default="", help="more options for every server, e.g. '--queue 16'")
    ap.add_argument("--workers", type=int, nargs="+", help="compare server processes (serve --workers N) instead")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run
        if run is None:
            spec, extra = MODELS[args.model]
            subprocess.run([sys.executable, "-m", "netwright", "train", str(ROOT / "examples" / spec), *extra,
                            "--name", args.model, "--runs-dir", tmp, "--quiet"], check=True, capture_output=True)
            run = str(Path(tmp) / args.model)
        name = Path(run).name
        info = json.loads((Path(run) / "data.json").read_text())
        shape = [1, *info["input_shape"]]
        x = np.random.default_rng(0).normal(size=shape).astype(np.float32)  # any valid model input
        routes = [(f"/v2/models/{name}/infer", {"inputs": [{"name": "input", "shape": shape, "datatype": "FP32",
                                                             "data": x.reshape(-1).tolist()}]})]
        if args.model == "digits" and args.run is None:
            from sklearn.datasets import load_digits

            routes.append(("/predict", {"pixels": load_digits().images[0].tolist()}))
        phases = [(f"{n} process{'es' * (n > 1)}", ["--workers", str(n)]) for n in args.workers or []] or \
            [("none (--max-batch 1)", ["--max-batch", "1"]), ("dynamic (defaults)", [])]
        what = "server processes given" if args.workers else "one server process"
        print(f"\n{args.clients} concurrent keep-alive clients, {args.seconds:g} s per route, loopback, {what} "
              f"(uvicorn, ONNX Runtime, 1 inference thread each); model: {name}\n")
        print(f"| route | {'processes' if args.workers else 'batching'} | requests | requests/s | p50 ms | p99 ms | errors |")
        print("|---|---|---:|---:|---:|---:|---:|")
        rates: dict[tuple[str, str], float] = {}
        for label, extra in phases:
            port = free_port()
            server = start(run, port, extra + args.serve_args.split())
            try:
                for path, body in routes:
                    asyncio.run(load(port, path, body, args.clients, 1.0))  # warm-up
                    r = asyncio.run(load(port, path, body, args.clients, args.seconds))
                    rates[(path, label)] = r["rps"]
                    print(f"| POST {path} | {label} | {r['requests']} | {r['rps']:.0f} | {r['p50']:.2f} | "
                          f"{r['p99']:.2f} | {r['errors']} |", flush=True)
            finally:
                server.terminate()
                server.wait(timeout=30)
        for path, _ in routes:
            first = phases[0][0]
            for label, _ in phases[1:]:
                print(f"{path}: {label} / {first} = {rates[(path, label)] / rates[(path, first)]:.2f}x requests/s")
        if args.png_clients:
            if info["modality"] != "image":
                sys.exit("--png-clients needs an image model: leave out --run, or give an image model's run")
            port = free_port()
            server = start(run, port, args.serve_args.split())
            try:
                asyncio.run(load(port, *routes[0], args.clients, 1.0))  # warm-up
                before = rss_mib(server.pid)
                rows = asyncio.run(with_pngs(port, *routes[0], args))
                after = rss_mib(server.pid)
            finally:
                server.terminate()
                server.wait(timeout=30)
            print(f"\nbig PNGs meanwhile (dynamic batching, {args.seconds:g} s)\n")
            print("| load | requests | p50 ms | p99 ms | non-200 answers |")
            print("|---|---:|---:|---:|---|")
            for label, r in rows:
                print(f"| {label} | {r['requests']} | {r['p50']:.2f} | {r['p99']:.2f} | {r['statuses'] or '-'} |")
            print(f"server RSS: {before:.0f} MiB before, {after:.0f} MiB after")


if __name__ == "__main__":
    main()
