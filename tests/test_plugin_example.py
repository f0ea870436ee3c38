"""The shipped plugin example (examples/plugins/: a user's own ResNet and callback) through every
verb, each in a fresh process that only the run tells where the model comes from; then the same
run after its plugin file changed: refused in one line, imported with a warning when trusted."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import numpy as np
from sklearn.datasets import load_digits

from conftest import ROOT, assert_one_line_error, run_subprocess

EXAMPLE = ROOT / "examples" / "plugins"


def ok(*args, **kwargs) -> subprocess.CompletedProcess:
    done = run_subprocess(*args, **kwargs)
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
    return done


def serve_one_request(run: Path, images: np.ndarray) -> list[str]:
    """Start ``netwright serve`` on a free loopback port, ask /predict once, stop it; the labels."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "netwright", "serve", str(run), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.time() > deadline:  # a hang guard, not a speed claim
                pytest.fail(f"server did not start: {proc.stderr.read()}")
            time.sleep(0.2)
        r = httpx.post(url + "/predict", json={"pixels": images.tolist()}, timeout=30)
        assert r.status_code == 200, r.text
        return [p["label"] for p in r.json()["predictions"]]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0  # graceful shutdown


def test_the_plugin_example_works_in_every_verb_and_a_changed_plugin_needs_trust(tmp_path: Path, cli):
    example = tmp_path / "plugins"  # a copy: the end of the test edits the plugin file
    shutil.copytree(EXAMPLE, example, ignore=shutil.ignore_patterns("__pycache__"))
    runs = tmp_path / "runs"
    ok("train", example / "digits_resnet.yaml", "--runs-dir", runs, "--quiet",
       "--set", "train.epochs=2", "--set", "train.threads=1")
    run = runs / "digits_resnet"
    assert json.loads((run / "plugins.json").read_text())[0]["plugin"] == str((example / "my_models.py").resolve())
    rows = (run / "epochs.csv").read_text().splitlines()  # the plugin's callback wrote it
    assert rows[0].startswith("epoch,") and "val_accuracy" in rows[0] and len(rows) == 3, rows

    ok("evaluate", run, "--no-plots")
    assert json.loads((run / "eval.json").read_text())["metrics"]["accuracy"] > 0.3
    ok("explain", run, "--method", "integrated_gradients", "--samples", "2", "--no-sanity")
    assert (run / "explain" / "explain.json").is_file()
    ok("compress", run, "--sparsity", "0.5", "--threads", "1", "--quiet")
    exported = ok("export", run)
    assert "verified" in exported.stdout and (run / "export" / "model.onnx").is_file()
    images = load_digits().images[:3].astype(np.float32)  # raw 0-16 pixels: the run's preprocessing applies
    np.save(tmp_path / "x.npy", images)
    predicted = [p["label"] for p in json.loads(ok("predict", run, tmp_path / "x.npy").stdout)]
    assert len(predicted) == 3
    assert serve_one_request(run, images) == predicted

    plugin = example / "my_models.py"
    old = json.loads((run / "plugins.json").read_text())[0]["sha256"]
    plugin.write_text(plugin.read_text() + "\n# edited after training\n")
    import hashlib

    new = hashlib.sha256(plugin.read_bytes()).hexdigest()
    assert_one_line_error(cli("evaluate", run), "my_models.py changed since training", str(run),
                          "--trust-changed-plugins", old[:12], new[:12])
    for trusted in (ok("--trust-changed-plugins", "evaluate", run, "--no-plots"),
                    ok("report", run, env={**os.environ, "NETWRIGHT_TRUST_CHANGED_PLUGINS": "1"})):
        warning = [line for line in trusted.stderr.splitlines() if line.startswith("warning:")]
        assert len(warning) == 1, trusted.stderr
        for fragment in ("my_models.py", str(run), old[:12], new[:12], "--trust-changed-plugins"):
            assert fragment in warning[0], (fragment, warning[0])
    assert (run / "report.html").is_file()
    details = json.loads((run / "report.json").read_text())["model_details"]
    assert details["name"] == "tiny_resnet" and details["family"] == "residual"
