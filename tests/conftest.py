"""Shared fixtures: an isolated runs folder, a dataset cache, and the real CLI in-process."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from netwright.doctor import SYSTEM

ROOT = Path(__file__).resolve().parents[1]

# What each Debian package of tools/system-deps provides, as the loaders look for it (the list
# `netwright doctor` reports). `make test` installs them all, so there every test below runs; a
# bare `pytest` on a machine without them skips these tests, each saying which package to install.
SYSTEM_PACKAGES = SYSTEM


# a small spoken-digits set (ten voices): synthesised once a session, shared by the tests that use it
TINY_SPEECH = {"name": "spoken_digits", "accents": ["en-us", "en-gb"], "variants": ["m1", "m3", "f2", "f4"],
               "flite": ["slt", "awb"], "speeds": [0.9, 1.2], "pitches": [0.5], "test_voices": 0.34, "val": 0.15}


def missing_packages(*packages: str) -> list[str]:
    """Those of ``packages`` (names from tools/system-deps) that this machine lacks."""
    return [p for p in packages if not SYSTEM_PACKAGES[p]()]


def needs_packages(*packages: str) -> pytest.MarkDecorator:
    """Skip, naming the install command, unless the Debian ``packages`` are installed."""
    missing = missing_packages(*packages)
    return pytest.mark.skipif(bool(missing), reason=f"apt-get install {' '.join(missing)} (make test installs it)")


@pytest.fixture(autouse=True, scope="session")
def _session_env(tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # the workers of one `pytest -n` share one cache (written atomically)
        base = base.parent
    cache = base / "cache"
    cache.mkdir(exist_ok=True)
    os.environ.setdefault("NETWRIGHT_CACHE", str(cache))
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _runs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test writes its runs under its own temporary folder."""
    runs = tmp_path / "runs"
    monkeypatch.setenv("NETWRIGHT_RUNS", str(runs))
    monkeypatch.chdir(tmp_path)
    return runs


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run ``netwright ARGS...`` in this process; returns exit code, stdout and stderr."""
    from netwright.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def run_subprocess(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """The real console entry point in a fresh process."""
    return subprocess.run([sys.executable, "-m", "netwright", *map(str, args)], capture_output=True, text=True,
                          **kwargs)


def tiny_spec(**train) -> dict:
    """A fast, small spec: an MLP on iris."""
    return {"data": {"name": "iris"}, "model": {"name": "mlp", "hidden": [16]},
            "train": {"epochs": 3, "batch_size": 16, "threads": 1, **train}}


def assert_one_line_error(result: CliResult, *fragments: str) -> None:
    """Exit code 2, one 'error:' line on stderr naming every fragment, no traceback."""
    assert result.code == 2, (result.code, result.err)
    assert len(result.error_lines) == 1, result.err
    line = result.error_lines[0]
    assert line.startswith("error: "), line
    assert "Traceback" not in result.err
    for f in fragments:
        assert f in line, (f, line)


def spec_file(folder: Path, data: dict, model: dict) -> Path:
    """A one-epoch, one-thread spec file for CLI tests of bad input."""
    import json

    path = folder / "spec.json"
    path.write_text(json.dumps({"data": data, "model": model, "train": {"epochs": 1, "threads": 1}}))
    return path


def killed_and_resumed(spec: dict, tmp_path: Path, kill_at_epoch: int,
                       kill_inside_epoch: bool = False, nproc: int = 1) -> tuple[Path, Path]:
    """Train ``spec`` in a process (``nproc`` processes: ``--nproc``, the job's whole process group
    killed) to the end, and again in one killed with SIGKILL once its
    checkpoint has reached ``kill_at_epoch`` (with ``kill_inside_epoch``: a checkpoint taken
    inside the epoch after it, ``batch`` > 0) and then resumed with ``--resume``; returns the two
    run folders (uninterrupted, killed). The killed run's ``checkpoints/last.json`` as it was
    when the kill landed (what the resume starts from) is kept as ``tmp_path / "killed.json"``."""
    import json
    import signal
    import time

    import yaml

    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    runs = tmp_path / "runs"
    import os

    procs = ["--nproc", str(nproc)] if nproc > 1 else []
    cmd = [sys.executable, "-m", "netwright", "train", str(path), "--runs-dir", str(runs), "--quiet", *procs]
    full = subprocess.run(cmd + ["--name", "full"], capture_output=True, text=True)
    assert full.returncode == 0, full.stderr
    proc = subprocess.Popen(cmd + ["--name", "killed"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    last = runs / "killed" / "checkpoints" / "last.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            state = json.loads(last.read_text())
            if state["epoch"] >= kill_at_epoch and (state["batch"] > 0 or not kill_inside_epoch):
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and every rank
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (runs / "killed" / "train.json").exists()
    (tmp_path / "killed.json").write_bytes(last.read_bytes())
    assert json.loads(last.read_text())["epoch"] < spec["train"]["epochs"]
    resumed = subprocess.run([sys.executable, "-m", "netwright", "train", str(runs / "killed"), "--resume", "--quiet",
                              *procs], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    return runs / "full", runs / "killed"
