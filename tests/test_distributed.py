"""Data-parallel training on torch.distributed (gloo on this CPU machine), through the real
torchrun launcher."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from netwright.training.checkpoint import read_weights

SPEC = {"data": {"name": "digits"}, "model": {"name": "cnn", "channels": [8, 16], "hidden": [32], "norm": "none"},
        "train": {"epochs": 3, "batch_size": 64, "threads": 1, "checkpoint_interval": 0,
                  "optimizer": {"name": "adam", "lr": 0.003}}}


def netwright(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netwright", *map(str, args)], capture_output=True, text=True, **kw)


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    return path


def max_weight_diff(a: Path, b: Path) -> float:
    wa, _ = read_weights(a)
    wb, _ = read_weights(b)
    assert wa.keys() == wb.keys()
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa)


def test_two_processes_end_with_the_weights_of_one(spec_file: Path, tmp_path: Path):
    runs = tmp_path / "runs"
    one = netwright("train", spec_file, "--name", "one", "--runs-dir", runs, "-q")
    two = netwright("train", spec_file, "--name", "two", "--runs-dir", runs, "-q", "--nproc", "2")
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-2000:]
    diff = max_weight_diff(runs / "one" / "model.safetensors", runs / "two" / "model.safetensors")
    assert diff < 5e-7, diff  # README: float32 rounding of gradients summed in another order (measured 1.5e-7)
    import json

    summary = json.loads((runs / "two" / "train.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 60  # global batches, as in one process
    # only rank 0 wrote: one run directory, one set of files
    assert sorted(p.name for p in runs.iterdir()) == ["one", "two"]


def _ranks() -> dict[int, int]:
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read()
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        if b"netwright" in cmd and b"torch.distributed.run" not in cmd:
            for e in env:
                if e.startswith(b"RANK=") and b"NETWRIGHT_TEST_JOB=" + str(os.getpid()).encode() in env:
                    found[int(e[5:])] = int(pid)
    return found


def test_a_killed_rank_ends_the_job_with_a_clear_error(spec_file: Path, tmp_path: Path):
    runs = tmp_path / "runs"
    env = {**os.environ, "NETWRIGHT_TEST_JOB": str(os.getpid())}
    proc = subprocess.Popen([sys.executable, "-m", "netwright", "train", str(spec_file), "--name", "job",
                             "--runs-dir", str(runs), "-q", "--nproc", "2", "--set", "train.epochs=80"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (runs / "job" / "checkpoints" / "last.json").exists():
        time.sleep(0.05)
    ranks = _ranks()
    assert set(ranks) == {0, 1}, ranks
    os.kill(ranks[1], signal.SIGKILL)
    _, err = proc.communicate(timeout=60)  # the surviving rank does not wait for the dead one forever
    assert proc.returncode == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: distributed training stopped: rank 1 was killed (signal 9)")
    assert "Traceback" not in err
    # the checkpoint it left resumes, in two processes again
    r = netwright("train", runs / "job", "--resume", "-q", "--nproc", "2", timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (runs / "job" / "train.json").exists()
