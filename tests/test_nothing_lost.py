"""Nothing lost, nothing blocked: runs are transactions, one writer per run, interrupts save a
checkpoint that resumes exactly, and problems of the machine (a full disk, a read-only folder, a
long name, a YAML bomb, an image bomb, a damaged run file) are one line with exit code 2."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import netwright
from netwright.errors import RunLocked, TrainingError, TrainingInterrupted
from netwright.run import Run
from netwright.tasks import SupervisedTask  # the classifier and regressor step
from netwright.training.checkpoint import read_weights

from conftest import assert_one_line_error, tiny_spec


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(runs: Path) -> list[str]:
    """Staging folders and locks left behind under ``runs``."""
    return sorted(p.name for p in runs.iterdir() if p.name.startswith("."))


@pytest.fixture
def old_run() -> Run:
    return netwright.train(tiny_spec(), name="old", progress="quiet")


@pytest.mark.parametrize("override, fragment", [
    ({"monitor": "val_nonsense"}, "unknown metric"),  # fails when the trainer starts
    ({"optimizer": {"name": "sgd", "lr": 1e12}}, "loss became"),  # fails in the first epoch
    ({"early_stopping": {"patience": 2}}, "validation split"),  # with data.val: 0
])
def test_a_failed_overwrite_leaves_the_old_run_byte_identical(old_run: Run, override: dict, fragment: str):
    before = snapshot(old_run.path)
    spec = tiny_spec(**override)
    if "early_stopping" in override:
        spec["data"]["val"] = 0
    with pytest.raises(netwright.NetwrightError, match=fragment):
        netwright.train(spec, name="old", overwrite=True, progress="quiet")
    assert snapshot(old_run.path) == before
    assert leftovers(old_run.path.parent) == []


def test_an_overwrite_that_succeeds_replaces_the_run(old_run: Run):
    run = netwright.train(tiny_spec(epochs=2), name="old", overwrite=True, progress="quiet")
    assert run.path == old_run.path and run.read_json("train.json")["epochs"] == 2
    assert leftovers(run.path.parent) == []


def test_a_failed_new_run_leaves_nothing_behind(_runs_dir: Path):
    with pytest.raises(TrainingError):
        netwright.train(tiny_spec(optimizer={"name": "sgd", "lr": 1e12}), name="new", progress="quiet")
    assert not (_runs_dir / "new").exists() and leftovers(_runs_dir) == []


def test_a_second_writer_is_refused_naming_the_holder(old_run: Run, cli):
    with old_run.lock("netwright evaluate"):
        lock = json.loads(old_run.lock_file.read_text())
        assert lock["pid"] == os.getpid() and lock["command"] == "netwright evaluate"
        # another process: the real CLI
        Path(old_run.path.parent.parent / "spec.yaml").write_text(yaml.safe_dump(tiny_spec()))
        proc = subprocess.run([sys.executable, "-m", "netwright", "train", "spec.yaml", "--name", "old",
                               "--overwrite", "--quiet"], capture_output=True, text=True,
                              cwd=old_run.path.parent.parent)
        assert proc.returncode == 2, proc.stderr
        assert f"in use by 'netwright evaluate' (pid {os.getpid()}" in proc.stderr
        assert leftovers(old_run.path.parent) == [".old.lock"]  # the refused writer left nothing behind
        proc = subprocess.run([sys.executable, "-m", "netwright", "evaluate", str(old_run.path)],
                              capture_output=True, text=True)
        assert proc.returncode == 2 and "in use by" in proc.stderr, proc.stderr
    assert not old_run.lock_file.exists()
    assert cli("evaluate", old_run.path).code == 0  # free again


def test_a_stale_lock_is_cleared_with_a_note(old_run: Run, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    old_run.lock_file.write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename,
                                             "command": "netwright train", "since": "earlier"}))
    stale = old_run.path.parent / ".old.new-abc"  # what the dead process was building
    stale.mkdir()
    run = netwright.train(tiny_spec(epochs=1), name="old", overwrite=True, progress="quiet")
    assert "cleared a stale lock" in capsys.readouterr().err
    assert run.read_json("train.json")["epochs"] == 1 and run.has("spec.yaml")
    assert not stale.exists() and not old_run.lock_file.exists()


def test_a_lock_held_elsewhere_is_not_stale(old_run: Run):
    old_run.lock_file.write_text(json.dumps({"pid": 1, "host": "another-machine", "command": "netwright train",
                                             "since": "earlier"}))
    with pytest.raises(RunLocked, match="pid 1 on another-machine"):
        netwright.evaluate(old_run)


@contextlib.contextmanager
def interrupt_at(step: int, signum: int) -> Iterator[None]:
    """Deliver a real ``signum`` to this process inside training step ``step`` (1-based)."""
    original = SupervisedTask.train_step
    count = {"n": 0}

    def step_then_signal(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        count["n"] += 1
        if count["n"] == step:
            signal.raise_signal(signum)
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SupervisedTask, "train_step", step_then_signal)
        yield


@pytest.mark.parametrize("signum, extra", [(signal.SIGINT, {}), (signal.SIGTERM, {}),
                                           (signal.SIGINT, {"ema": 0.9, "keep": "last"})],
                         ids=["SIGINT", "SIGTERM", "SIGINT-ema"])
def test_an_interrupt_inside_an_epoch_checkpoints_and_resumes_exactly(signum: int, extra: dict):
    # dropout and augmentation draw random numbers inside the epoch: the resume must restore them
    # (and the weights' moving average, with train.ema)
    spec = {"data": {"name": "digits"}, "model": {"name": "mlp", "hidden": [32], "dropout": 0.3},
            "train": {"epochs": 3, "batch_size": 64, "threads": 1, "augment": {"shift": 1, "noise": 0.05},
                      "schedule": {"name": "onecycle"}, "optimizer": {"name": "adamw", "lr": 0.01}, **extra}}
    before = signal.getsignal(signal.SIGINT)  # what this process had (an earlier test in this worker may have set it)
    full = netwright.train(spec, name="full", progress="quiet")
    steps = full.read_json("train.json")["steps"]
    per_epoch = steps // 3
    at = per_epoch + 7  # step 7 of epoch 2
    with interrupt_at(at, signum), pytest.raises(TrainingInterrupted) as caught:
        netwright.train(spec, name="cut", progress="quiet")
    message = str(caught.value)
    assert f"stopped at epoch 2, step 7 of {per_epoch}" in message and "--resume" in message
    assert caught.value.signum == signum
    cut = Run.open("cut")  # committed: a new run moves home once it has a checkpoint
    assert cut.read_json("checkpoints/last.json")["batch"] == 7
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored
    netwright.train(cut.path, resume=True, progress="quiet")
    assert (cut.path / "metrics.jsonl").read_text() == (full.path / "metrics.jsonl").read_text()
    a, _ = read_weights(full.path / "model.safetensors")
    b, _ = read_weights(cut.path / "model.safetensors")
    assert all(bool((a[k] == b[k]).all()) for k in a)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_overwrite_keeps_the_old_run_and_parks_the_new_one_resumable(old_run: Run, signum: int):
    """Ctrl-C (or SIGTERM) is how a user cancels an accidental --overwrite: the finished run stays
    byte for byte; the new one waits beside it as NAME.overwrite and replaces it once resumed."""
    before = snapshot(old_run.path)
    with interrupt_at(3, signum), pytest.raises(TrainingInterrupted) as caught:
        netwright.train(tiny_spec(epochs=4), name="old", overwrite=True, progress="quiet")
    assert snapshot(old_run.path) == before
    parked = old_run.path.parent / "old.overwrite"
    message = str(caught.value)
    assert caught.value.signum == signum and f"{old_run.path} is unchanged" in message
    assert f"netwright train {parked} --resume" in message and "delete that folder" in message
    assert (parked / "checkpoints" / "last.safetensors").is_file() and not (parked / "train.json").exists()
    assert leftovers(old_run.path.parent) == []  # no staging folder, no lock
    with interrupt_at(2, signum), pytest.raises(TrainingInterrupted):  # interrupted again: still parked
        netwright.train(parked, resume=True, progress="quiet")
    assert snapshot(old_run.path) == before and (parked / "replaces.json").is_file()
    run = netwright.train(parked, resume=True, progress="quiet")
    assert run.path == old_run.path and run.read_json("train.json")["epochs"] == 4
    assert not parked.exists() and not (old_run.path / "replaces.json").exists()
    assert sorted(p.name for p in old_run.path.parent.iterdir()) == ["old"]


def test_sigterm_to_the_cli_exits_143_with_the_resume_line(tmp_path: Path):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"data": {"name": "digits"}, "model": {"name": "mlp"},
                                    "train": {"epochs": 400, "batch_size": 16, "threads": 1,
                                              "checkpoint_interval": 0}}))
    proc = subprocess.Popen([sys.executable, "-m", "netwright", "train", str(spec), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    # the first epoch's checkpoint: training has started (its signal handlers are in place)
    while time.monotonic() < deadline and not (tmp_path / "runs" / "s" / "checkpoints" / "last.json").exists():
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("SIGTERM: stopped at") and f"netwright train {tmp_path}/runs/s --resume" in lines[-1], err
    assert (tmp_path / "runs" / "s" / "checkpoints" / "last.safetensors").is_file()
    assert leftovers(tmp_path / "runs") == []


# ---------------------------------------------------------------------- the machine's problems

def test_a_long_run_name_is_one_line(cli, tmp_path: Path):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(tiny_spec()))
    assert_one_line_error(cli("train", tmp_path / "s.yaml", "--name", "x" * 300), "at most 100")


def test_a_damaged_data_json_is_one_line(old_run: Run, cli):
    (old_run.path / "data.json").write_text("{}")
    assert_one_line_error(cli("evaluate", old_run.path), "data.json: damaged", "train the run again")


def test_a_yaml_alias_bomb_is_refused_before_it_is_expanded(cli, tmp_path: Path, monkeypatch):
    """9^26 values written in 26 lines: refused on the node graph, before one list is built."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefghijklmnopqrstuvwxy", "bcdefghijklmnopqrstuvwxyz"):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    built = []
    construct = yaml.constructor.SafeConstructor.construct_sequence
    monkeypatch.setattr(yaml.constructor.SafeConstructor, "construct_sequence",
                        lambda self, node, deep=False: built.append(node) or construct(self, node, deep))
    result = cli("validate", tmp_path / "bomb.yaml")
    assert built == []  # no list of the document was made
    assert_one_line_error(result, "malformed YAML", "aliases", "write the values out")
    assert len(result.err) < 400


def test_error_lines_are_capped(cli, tmp_path: Path):
    (tmp_path / "long.yaml").write_text(yaml.safe_dump({"data": {"name": "x" * 50_000}, "model": {"name": "mlp"}}))
    result = cli("validate", tmp_path / "long.yaml")
    assert result.code == 2 and len(result.err) < 2200, len(result.err)


def test_an_image_bomb_is_one_line(cli, tmp_path: Path):
    from PIL import Image

    run = netwright.train({"data": {"name": "digits"}, "model": {"name": "mlp", "hidden": [8]},
                           "train": {"epochs": 1, "threads": 1}}, name="img", progress="quiet")
    bomb = tmp_path / "bomb.png"
    Image.new("1", (12_000, 12_000)).save(bomb)  # 144 M pixels in 20 KB
    assert bomb.stat().st_size < 100_000
    assert_one_line_error(cli("predict", run.path, bomb), "bomb.png", "too large to decode safely")


UNSHARE = shutil.which("unshare")


def in_namespace(script: str, cwd: Path) -> subprocess.CompletedProcess:
    """``script`` in a private mount namespace, where it may mount a small or read-only folder."""
    return subprocess.run([UNSHARE, "-Urm", "sh", "-ec", script], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHON": sys.executable})


def namespaces_work() -> bool:
    if UNSHARE is None:
        return False
    probe = subprocess.run([UNSHARE, "-Urm", "sh", "-c", "mount -t tmpfs tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


needs_mounts = pytest.mark.skipif(not namespaces_work(), reason="needs unshare -Urm (user and mount namespaces) "
                                  "to give the test a full disk or a read-only folder")


@needs_mounts
def test_a_full_disk_is_one_line_and_keeps_the_old_run(tmp_path: Path):
    small = tmp_path / "small"
    small.mkdir()
    (tmp_path / "big.yaml").write_text(yaml.safe_dump({"data": {"name": "digits"},
                                                       "model": {"name": "mlp", "hidden": [1024, 1024]},
                                                       "train": {"epochs": 1, "threads": 1}}))
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tiny_spec(epochs=1)))
    done = in_namespace(f"""mount -t tmpfs -o size=1m tmpfs {small}
        "$PYTHON" -m netwright train tiny.yaml --name r --runs-dir {small} --quiet
        find {small}/r -type f | sort | xargs sha256sum > before
        if "$PYTHON" -m netwright train big.yaml --name r --runs-dir {small} --overwrite --quiet 2> err; then
            exit 9; else echo "exit $?" >> err; fi
        find {small}/r -type f | sort | xargs sha256sum > after
        ls -A {small} > listing""", tmp_path)
    assert done.returncode == 0, done.stderr
    err = (tmp_path / "err").read_text().splitlines()
    assert err[-1] == "exit 2" and err[-2].startswith("error: ") and "no space left" in err[-2], err
    assert (tmp_path / "before").read_text() == (tmp_path / "after").read_text()
    assert (tmp_path / "listing").read_text().split() == ["r"]  # no staging folder, no lock left


@needs_mounts
def test_a_read_only_runs_folder_is_one_line(tmp_path: Path):
    runs = tmp_path / "runs"
    netwright.train(tiny_spec(), name="ro", runs_dir=runs, progress="quiet")
    (tmp_path / "serve.py").write_text(f"""
from fastapi.testclient import TestClient
from netwright.deploy.server import create_app
client = TestClient(create_app("{runs}/ro"))
r = client.post("/v2/models/ro/infer", json={{"inputs": [{{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                                          "data": [0.1, 0.2, 0.3, 0.4]}}]}})
print(r.status_code, client.get("/v2/models/ro").json()["platform"])
""")
    done = in_namespace(f"""mount --bind {runs} {runs}
        mount -o remount,bind,ro {runs}
        for cmd in "evaluate {runs}/ro" "train --resume {runs}/ro" "explain {runs}/ro"; do
            "$PYTHON" -m netwright $cmd 2>> err && exit 9 || echo "exit $?" >> err
        done
        "$PYTHON" serve.py > served""", tmp_path)
    assert done.returncode == 0, done.stderr
    # a read-only run is still served: without its ONNX export, by PyTorch
    assert (tmp_path / "served").read_text().split() == ["200", "torch"]
    err = (tmp_path / "err").read_text().splitlines()
    assert err.count("exit 2") == 3, err
    problems = [line for line in err if line.startswith("error: ")]
    assert len(problems) == 3 and all("read-only file system" in line for line in problems), err


def test_a_port_out_of_range_is_refused(old_run: Run, cli):
    result = cli("serve", old_run.path, "--port", "99999")
    assert result.code == 2 and "--port" in result.err and "65535" in result.err, result.err


class _Boom(RuntimeError):
    pass


def _fail(*args, **kwargs):
    raise _Boom("planted failure after the stage wrote")


@pytest.fixture
def scored_run(old_run: Run) -> Run:
    """A run with every stage's files in place: the ones a failed stage must leave as they are."""
    netwright.evaluate(old_run)
    netwright.explain(old_run, samples=2, sanity=False)
    netwright.export(old_run, samples=32)
    netwright.report(old_run)
    return old_run


# each stage is made to fail after it has written (or replaced) some of its files with new content
STAGE_FAILURES = {
    "evaluate": (lambda r: netwright.evaluate(r, split="val"), "netwright.tasks.classification", "ClassificationTask.plots"),
    "explain": (lambda r: netwright.explain(r, samples=3, sanity=False), "netwright.explain.pictures", "feature_bars"),
    "export": (lambda r: netwright.export(r, samples=16), "netwright.training.tracking", "log_export"),
    "report": (lambda r: netwright.report(r), "netwright.training.tracking", "log_artifacts"),
    "compress": (lambda r: netwright.compress(r, sparsity=0.5, quantize="int8", progress="quiet"),
                 "netwright.compress.compressor", "Compressor.compare"),
}


@pytest.mark.parametrize("stage", list(STAGE_FAILURES))
def test_a_stage_that_fails_leaves_the_run_byte_identical(scored_run: Run, stage: str, monkeypatch):
    """Runs are transactions for every writing stage, not only train: what the failed stage
    replaced comes back, what it added goes, nothing of its journal stays."""
    import importlib

    call, module, attr = STAGE_FAILURES[stage]
    before = snapshot(scored_run.path)
    if stage == "compress":  # a compress that ran before: its variants must survive a failed one
        netwright.compress(scored_run, quantize="int8", progress="quiet")
        before = snapshot(scored_run.path)
    owner = importlib.import_module(module)
    *outer, name = attr.split(".")
    for part in outer:
        owner = getattr(owner, part)
    monkeypatch.setattr(owner, name, _fail)
    if stage == "report":  # a card that differs from the one in place
        monkeypatch.setattr(importlib.import_module("netwright.stages.report"), "render", lambda card, pics: "changed")
    with pytest.raises(_Boom):
        call(scored_run)
    assert snapshot(scored_run.path) == before
    assert not list(scored_run.path.glob(".journal-*")) and leftovers(scored_run.path.parent) == []


FAIR_SPEC = {"data": {"name": "biased"}, "model": {"name": "mlp", "hidden": [16]}, "train": {"epochs": 2, "threads": 1},
             "fairness": {"sensitive": ["group"], "positive_label": "approved"}}


def _write_then_fail(rel: str):
    """Run.write_json that writes ``rel`` and then fails (the stage has written its result)."""
    original = Run.write_json

    def write(self: Run, path: str, obj):
        out = original(self, path, obj)
        if path == rel:
            raise _Boom(f"planted failure after writing {rel}")
        return out
    return write


# stages of a classifier with a sensitive column: each fails after writing (or replacing) its result
FAIR_FAILURES = {
    "calibrate": (lambda r: netwright.calibrate(r), "netwright.run.Run.write_json", _write_then_fail("calibration.json")),
    "audit": (lambda r: netwright.audit(r), "netwright.fairness.pictures.audit_plot", _fail),
    "mitigate": (lambda r: netwright.mitigate(r, methods=["reweighing", "thresholds"]),
                 "netwright.fairness.pictures.tradeoff_plot", _fail),
}


@pytest.mark.parametrize("stage", list(FAIR_FAILURES))
def test_calibrate_audit_and_mitigate_that_fail_leave_the_run_byte_identical(stage: str, monkeypatch):
    run = netwright.train({**FAIR_SPEC, "seed": 3}, name="fair", progress="quiet")
    netwright.calibrate(run)
    netwright.audit(run)
    netwright.mitigate(run, methods=["reweighing"])
    for p in run.path.rglob("*.json"):  # other bytes than the stage would write, even with the same content
        p.write_bytes(p.read_bytes() + b"\n")
    before = snapshot(run.path)
    call, target, replacement = FAIR_FAILURES[stage]
    monkeypatch.setattr(target, replacement)
    with pytest.raises(_Boom):
        call(run)
    assert snapshot(run.path) == before
    assert not list(run.path.rglob(".journal-*")) and leftovers(run.path.parent) == []
    assert not [p for p in run.path.rglob(".*") if p.name != ".overwrite"]  # no lock, staging or temporary inside


def test_a_stage_killed_midway_is_undone_by_the_next_writer(scored_run: Run):
    """kill -9 in the middle of a stage: the next writer clears the stale lock and puts back
    what the dead one had changed, with a note."""
    before = snapshot(scored_run.path)
    code = ("import os, signal, netwright\n"
            "from netwright.atomic import journal, write_text\n"
            f"run = netwright.Run.open({str(scored_run.path)!r})\n"
            "with run.lock('netwright evaluate'), journal(run.path):\n"
            "    write_text(run.file('eval.json'), 'half a stage')\n"
            "    write_text(run.file('eval/new.png'), 'new')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL
    assert (scored_run.path / "eval.json").read_text() == "half a stage"
    proc = subprocess.run([sys.executable, "-m", "netwright", "report", str(scored_run.path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "undid what an unfinished stage of a stopped process had changed" in proc.stderr
    after = snapshot(scored_run.path)
    assert after["eval.json"] == before["eval.json"] and "eval/new.png" not in after
    assert {k for k in after if not k.startswith("report")} == {k for k in before if not k.startswith("report")}


def test_a_stage_that_trains_runs_inside_it_and_then_fails_leaves_nothing(scored_run: Run):
    """As mitigate does: runs trained into the run's own folder, then a failure. The runs go, the
    files they replaced come back, no journal stays."""
    from netwright.run import writes_run

    netwright.train(tiny_spec(), name="v1", runs_dir=scored_run.file("fairness"), progress="quiet")
    before = snapshot(scored_run.path)

    @writes_run("netwright test")
    def stage(run: Run) -> None:
        netwright.train(tiny_spec(epochs=2), name="v1", runs_dir=run.file("fairness"), overwrite=True,
                        progress="quiet")  # replaces an earlier variant
        netwright.train(tiny_spec(), name="v2", runs_dir=run.file("fairness"), progress="quiet")  # a new one
        raise _Boom("after training two variants")

    with pytest.raises(_Boom):
        stage(scored_run)
    assert snapshot(scored_run.path) == before
    assert not [p for p in scored_run.path.rglob(".journal-*")]


def test_the_next_writer_undoes_a_dead_stage_even_when_the_user_deleted_its_lock(scored_run: Run):
    before = snapshot(scored_run.path)
    code = ("import os, signal, netwright\n"
            "from netwright.atomic import journal, write_text\n"
            f"run = netwright.Run.open({str(scored_run.path)!r})\n"
            "with run.lock('netwright evaluate'), journal(run.path):\n"
            "    write_text(run.file('spec.yaml'), 'half a stage')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    scored_run.lock_file.unlink()  # as the lock's message allows when its process is gone
    with scored_run.lock("netwright report"):
        pass
    assert snapshot(scored_run.path) == before


def test_the_journal_puts_back_files_and_folders_wherever_the_run_lives(tmp_path: Path):
    """Directly: replaced files, a removed folder, files added to old and new folders; the run
    sits below a folder whose name looks like a journal's."""
    from netwright.atomic import journal, remove_tree, write_text

    root = tmp_path / ".journal-notes" / "run"
    (root / "variants" / "a").mkdir(parents=True)
    write_text(root / "eval.json", "old")
    write_text(root / "variants" / "a" / "w.bin", "weights")
    before = snapshot(root)
    with pytest.raises(_Boom), journal(root):
        write_text(root / "eval.json", "new")
        write_text(root / "eval.json", "newer")  # replaced twice: the first content comes back
        remove_tree(root / "variants" / "a")
        write_text(root / "variants" / "a" / "w.bin", "other weights")
        write_text(root / "added" / "x.png", "x")
        raise _Boom("midway")
    assert snapshot(root) == before and sorted(p.name for p in root.iterdir()) == ["eval.json", "variants"]
    with journal(root):  # a stage that succeeds keeps what it wrote, and no journal
        write_text(root / "eval.json", "kept")
    assert (root / "eval.json").read_text() == "kept" and not list(root.glob(".journal-*"))


@pytest.mark.parametrize("delay", [0.1, 0.3, 0.6, 1.0])
def test_a_ctrl_c_at_any_moment_of_the_start_is_one_line_and_exit_130(tmp_path: Path, delay: float):
    """During the imports (the first second) as during the work: exit code 130, one line, no traceback."""
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(epochs=200)))
    proc = subprocess.Popen([sys.executable, "-m", "netwright", "train", str(spec), "--quiet"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 130 and len(lines) == 1 and "Traceback" not in err, (proc.returncode, err)
    assert lines[0] == "interrupted" or lines[0].startswith("SIGINT: stopped at"), err


def test_two_writers_through_a_link_share_one_lock(old_run: Run, cli, tmp_path: Path):
    """The lock sits beside the real folder: a writer through a symbolic link to the run (or to the
    folder holding it) is refused while another holds the run by its own path."""
    (old_run.path.parent / "alias").symlink_to(old_run.path, target_is_directory=True)
    (tmp_path / "elsewhere").symlink_to(old_run.path.parent, target_is_directory=True)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time, netwright\n"
        f"with netwright.Run.open({str(old_run.path)!r}).lock('netwright audit'):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = snapshot(old_run.path)
        for path in (old_run.path.parent / "alias", tmp_path / "elsewhere" / "old"):
            assert_one_line_error(cli("evaluate", path), "in use by 'netwright audit'", f"pid {holder.pid}")
        assert snapshot(old_run.path) == before
    finally:
        holder.kill()
        holder.wait()
    assert cli("evaluate", old_run.path.parent / "alias").code == 0  # the holder is gone: the lock is stale


@needs_mounts
def test_a_run_folder_that_is_a_mount_point_is_refused_before_an_overwrite_writes(tmp_path: Path):
    """Renaming a mount point fails (EBUSY), so an overwrite could not swap the run in: it is refused
    at the start with one line, the old run as it was; stages that write inside the run still work."""
    runs = tmp_path / "runs"
    netwright.train(tiny_spec(), name="m", runs_dir=runs, progress="quiet")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tiny_spec(epochs=1)))
    done = in_namespace(f"""mount --bind {runs}/m {runs}/m
        find {runs}/m -type f | sort | xargs sha256sum > before
        if "$PYTHON" -m netwright train tiny.yaml --name m --runs-dir {runs} --overwrite --quiet 2> err; then
            exit 9; else echo "exit $?" >> err; fi
        find {runs}/m -type f | sort | xargs sha256sum > after
        ls -A {runs} > listing
        "$PYTHON" -m netwright evaluate {runs}/m > /dev/null 2>> evaluated && echo "exit 0" >> evaluated""", tmp_path)
    assert done.returncode == 0, done.stderr
    err = (tmp_path / "err").read_text().splitlines()
    assert err[-1] == "exit 2" and err[-2].startswith("error: ") and "is a mount point" in err[-2], err
    assert "--name" in err[-2]
    assert (tmp_path / "before").read_text() == (tmp_path / "after").read_text()
    assert (tmp_path / "listing").read_text().split() == ["m"]  # no staging folder, no lock, no swap note
    assert (tmp_path / "evaluated").read_text().strip().endswith("exit 0")


def test_a_ctrl_c_while_compress_fine_tunes_undoes_it_and_says_so(scored_run: Run):
    """The fine-tuning checkpoint goes with the rollback, so the message names no folder to resume:
    the run is as it was and the command is to be run again."""
    before = snapshot(scored_run.path)
    with interrupt_at(2, signal.SIGINT), pytest.raises(TrainingInterrupted) as caught:
        netwright.compress(scored_run, prune=0.5, finetune_epochs=2, progress="quiet")
    message = str(caught.value)
    assert message.startswith("SIGINT: netwright compress stopped") and "--resume" not in message, message
    assert f"{scored_run.path} is as it was" in message and caught.value.signum == signal.SIGINT
    assert snapshot(scored_run.path) == before
    assert not list(scored_run.path.rglob(".journal-*")) and leftovers(scored_run.path.parent) == []


def test_a_csv_without_line_breaks_is_refused_before_it_is_read_whole(cli, tmp_path: Path, old_run: Run,
                                                                      monkeypatch):
    """A multi-GB file with no newline once took 4.5 GB of memory to be called malformed: now no more
    than one line's limit is read (made 1 MiB here; 64 MiB by default)."""
    import netwright.data.tabular as tabular

    monkeypatch.setattr(tabular, "MAX_LINE", 1 << 20)
    blob = tmp_path / "blob.csv"
    blob.write_bytes(b"x" * (3 << 20))

    class Counted(io.StringIO):
        asked: list[int] = []

        def readline(self, size: int = -1) -> str:
            self.asked.append(size)
            return super().readline(size)

    text = Counted("x" * (3 << 20))
    with pytest.raises(netwright.DataError, match="without a line break"):
        list(tabular.bounded_lines(text, "t.csv"))
    assert text.asked == [1 << 20] and text.tell() == 1 << 20  # one bounded read, not the whole file
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"data": {"name": "csv", "path": str(blob), "target": "y"},
                                    "model": {"name": "mlp"}, "train": {"epochs": 1}}))
    assert_one_line_error(cli("train", spec), "blob.csv", "without a line break")
    assert_one_line_error(cli("predict", old_run.path, blob), "blob.csv", "without a line break")


def test_a_final_move_that_fails_is_one_line_and_leaves_the_old_run(old_run: Run, cli, tmp_path: Path, monkeypatch):
    """EBUSY (a run folder that is a mount point the check did not see, a busy network share): one
    line, the old run byte for byte, no staging folder left."""
    import errno

    import netwright.run as run_module

    def busy(new, home):
        raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), str(home))

    before = snapshot(old_run.path)
    monkeypatch.setattr(run_module, "replace_tree", busy)
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(epochs=1)))
    result = cli("train", spec, "--name", "old", "--runs-dir", old_run.path.parent, "--overwrite", "--quiet")
    assert_one_line_error(result, "could not move the finished run there", "busy", "the old run is unchanged")
    assert snapshot(old_run.path) == before and leftovers(old_run.path.parent) == []


def test_a_journal_leaves_alone_what_others_wrote_meanwhile(tmp_path: Path):
    """Rollback undoes this stage's writes only: a file another program put in the folder while the
    stage ran stays."""
    from netwright.atomic import journal, write_text

    root = tmp_path / "run"
    root.mkdir()
    write_text(root / "eval.json", "old")
    with pytest.raises(_Boom), journal(root):
        write_text(root / "eval.json", "new")
        write_text(root / "made" / "x.png", "x")
        (root / "notes.txt").write_text("the user's")  # not through netwright
        raise _Boom("midway")
    assert (root / "eval.json").read_text() == "old" and not (root / "made").exists()
    assert (root / "notes.txt").read_text() == "the user's"


def test_staging_folders_of_live_or_other_machines_processes_are_left_alone(old_run: Run):
    """The next writer removes new runs that dead processes of this machine were building; one whose
    maker still runs, or was made on another machine sharing the folder, stays."""
    from netwright.atomic import _host_tag

    runs, tag = old_run.path.parent, _host_tag()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folders = {"dead": f".old.new-{tag}-{dead.stdout.strip()}-aaaa", "alive": f".old.new-{tag}-{os.getpid()}-bbbb",
               "elsewhere": f".old.new-{'0' * 6 if tag != '0' * 6 else '1' * 6}-1-cccc", "earlier": ".old.new-x1y2z3"}
    for name in folders.values():
        (runs / name).mkdir()
    with old_run.lock("netwright test"):
        pass
    left = {p.name for p in runs.iterdir() if p.name.startswith(".old.new-")}
    assert left == {folders["alive"], folders["elsewhere"]}, left
