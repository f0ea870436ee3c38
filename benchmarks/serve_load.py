"""Load on the inference server: concurrent clients on loopback, bounded in count and time.

Starts ``netwright serve`` on a free loopback port in its own process, twice: without
dynamic batching (``--max-batch 1``) and with it (the defaults), then keeps ``--clients``
keep-alive HTTP/1.1 connections busy for ``--seconds`` from an asyncio client in this process,
and prints throughput, p50/p99 latency and errors per route, and the batched/unbatched ratio.
The model: the demo's digits CNN, or (``--model fashion``) the CNN of examples/fashion_cnn.yaml
(trained for one epoch on 3,000 images: its cost per request is what matters here), unless
``--run`` names one.

    .venv/bin/python benchmarks/serve_load.py [--model digits|fashion] [--run RUN] [--clients 32] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
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


async def client(port: int, request: bytes, deadline: float, latencies: list[float], errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
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


async def load(port: int, path: str, body: dict, clients: int, seconds: float) -> dict:
    data = json.dumps(body).encode()
    request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(data)}\r\n\r\n").encode() + data
    latencies: list[float] = []
    errors: list[str] = []
    t0 = time.perf_counter()
    await asyncio.gather(*[client(port, request, t0 + seconds, latencies, errors) for _ in range(clients)])
    elapsed = time.perf_counter() - t0
    lat = np.array(latencies) * 1e3
    return {"requests": len(lat), "rps": len(lat) / elapsed, "p50": float(np.percentile(lat, 50)),
            "p99": float(np.percentile(lat, 99)), "errors": len(errors)}


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
        print(f"\n{args.clients} concurrent keep-alive clients, {args.seconds:g} s per route, loopback, one server "
              f"process (uvicorn, ONNX Runtime, 1 inference thread); model: {name}\n")
        print("| route | batching | requests | requests/s | p50 ms | p99 ms | errors |")
        print("|---|---|---:|---:|---:|---:|---:|")
        rates: dict[tuple[str, str], float] = {}
        for label, extra in (("none (--max-batch 1)", ["--max-batch", "1"]), ("dynamic (defaults)", [])):
            port = free_port()
            server = start(run, port, extra)
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
            print(f"{path}: dynamic batching / none = "
                  f"{rates[(path, 'dynamic (defaults)')] / rates[(path, 'none (--max-batch 1)')]:.2f}x requests/s")


if __name__ == "__main__":
    main()
