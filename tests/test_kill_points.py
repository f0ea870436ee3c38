"""kill -9 at every file operation of a writing command: the run is then the old one byte for
byte or the new one complete, never a mix and never none, once the next writer has looked at it.

Each command runs in a forked copy of this process under an audit hook (``sys.addaudithook``)
that counts its file-system operations under the runs folder (opening a file to write, rename,
remove, mkdir, link, chmod, and each removal inside a tree being deleted) and sends itself
SIGKILL at operation K. A first run to the end counts the operations and gives the new run; then
the command is killed at each of its operations in turn (at most ``POINTS`` of them, spread evenly
from the first to the last, for the long ones), on a fresh copy of the old run each time. After
the kill, the next writer takes the run's lock (clearing the dead process's lock, finishing or
undoing its swap, rolling back its journal) and the run is compared with the old one and with
the new one.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import multiprocessing
from collections.abc import Callable
from pathlib import Path

import pytest

import netwright
from netwright.run import Run


POINTS = 10  # kill points a command at most: its first and last operations and evenly between
SPEC = {"data": {"name": "biased"}, "model": {"name": "mlp", "hidden": [16]},
        "train": {"epochs": 2, "threads": 1, "checkpoint_interval": 0},
        "fairness": {"sensitive": ["group"], "positive_label": "approved"}}
FORKS = multiprocessing.get_context("forkserver")
FORKS.set_forkserver_preload(["torch", "netwright.stages.train", "netwright.stages.compress", "netwright.stages.export",
                              "netwright.stages.mitigate", "netwright.stages.audit", "netwright.stages.report",
                              "netwright.stages.calibrate", "test_kill_points"])
WRITES = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
TEXT = {".json", ".jsonl", ".yaml", ".html", ".txt"}
MOVES = {"os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.link", "os.symlink", "os.truncate", "os.chmod"}


def _counting_hook(root: str, kill_at: int, count: list[int]) -> Callable[[str, tuple], None]:
    deleting = [False]  # inside shutil.rmtree of a folder under root: its removals name files relative to a folder

    def under(path: object) -> bool:
        try:
            return os.path.abspath(os.fsdecode(path)).startswith(root)
        except TypeError:  # a file descriptor
            return False

    def hook(event: str, args: tuple) -> None:
        if event == "shutil.rmtree":
            deleting[0] = under(args[0])
            hit = deleting[0]
        elif event == "open":
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            mode = args[1] if isinstance(args[1], str) else ""
            hit = (bool(flags & WRITES) or any(c in mode for c in "wax+")) and under(args[0])
        elif event in MOVES:
            relative = len(args) > 1 and isinstance(args[-1], int) and args[-1] >= 0 and event in ("os.remove", "os.rmdir")
            hit = deleting[0] if relative else under(args[0])
        else:
            return
        if hit:
            count[0] += 1
            if count[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    return hook


def _child(command: str, home: str, kill_at: int, counted: str) -> None:
    """In the child: count (and at ``kill_at``, die at) the file operations under the runs folder."""
    os.chdir(Path(counted).parent)
    count = [0]
    sys.addaudithook(_counting_hook(str(Path(home).parent.resolve()), kill_at, count))
    COMMANDS[command](Path(home))
    Path(counted).write_text(str(count[0]))


def run_killed(command: str, home: Path, kill_at: int = 0) -> tuple[int, int]:
    """Run ``command`` on ``home`` in a child process killed at its ``kill_at``-th file operation
    under the runs folder (0: never); returns (the signal that ended it or 0, the operations made).

    Children are forked from a server that imported netwright and PyTorch but never ran a kernel
    (multiprocessing's forkserver), so each starts in milliseconds and without the thread pools
    that make a fork of a process that computed hang."""
    counted = home.parent.parent / "count"
    counted.unlink(missing_ok=True)
    child = FORKS.Process(target=_child, args=(command, str(home), kill_at, str(counted)))
    child.start()
    child.join()
    if child.exitcode == 0:
        return 0, int(counted.read_text())
    assert child.exitcode < 0, f"{command} failed when it was not killed (exit {child.exitcode}; traceback above)"
    return -child.exitcode, kill_at


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file (with its bytes) and folder (None) under ``folder``."""
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes()) for p in sorted(folder.rglob("*"))}


def judge(now: dict, old: dict, new: dict) -> str:
    """'old' when ``now`` is the old run byte for byte; 'new' when it has every path of the new run and
    nothing else, files the command left alone as they were, and every file it changed changed."""
    if now == old:
        return "old"
    assert now, "no run at all"
    assert set(now) == set(new), f"a mix: paths {sorted(set(now) ^ set(new))[:8]} differ from the new run's"
    stale = [rel for rel, data in now.items() if old.get(rel) != new[rel] and data == old.get(rel)]
    kept = [rel for rel, data in now.items() if old.get(rel) == new[rel] and data != old[rel]]
    assert not stale, f"a mix: {stale[:8]} still hold the old run's bytes"
    assert not kept, f"{kept[:8]} changed, though the command leaves them alone"
    return "new"


@pytest.fixture(scope="module")
def old_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run with every stage's files in place (what a killed command must not lose or mix)."""
    runs = tmp_path_factory.mktemp("kill") / "runs"
    run = netwright.train(SPEC, name="r", runs_dir=runs, progress="quiet")
    netwright.evaluate(run)
    netwright.calibrate(run)
    netwright.audit(run)
    netwright.export(run, samples=16)
    netwright.compress(run, quantize="int8", progress="quiet")
    netwright.mitigate(run, methods=["reweighing"])
    netwright.report(run)
    # a new line at the end of every text file: a command that rewrites one, even with the same
    # content, gives other bytes, so that an old file left beside new ones shows
    for p in run.path.rglob("*"):
        if p.suffix in TEXT:
            p.write_bytes(p.read_bytes() + b"\n")
    return run.path


COMMANDS: dict[str, Callable[[Path], object]] = {
    "train --overwrite": lambda r: netwright.train({**SPEC, "seed": 7, "train": {**SPEC["train"], "epochs": 1}},
                                                   name="r", runs_dir=r.parent, overwrite=True, progress="quiet"),
    "compress": lambda r: netwright.compress(r, quantize="int8", progress="quiet"),
    "export": lambda r: netwright.export(r, samples=16),
    "calibrate": lambda r: netwright.calibrate(r),
    "audit": lambda r: netwright.audit(r),
    "report": lambda r: netwright.report(r),
    "mitigate": lambda r: netwright.mitigate(r, methods=["reweighing"]),
}


def fresh_copy(old_run: Path, where: Path) -> Path:
    shutil.rmtree(where, ignore_errors=True)
    home = where / "runs" / "r"
    shutil.copytree(old_run, home, symlinks=True)
    return home


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_command_killed_at_each_file_operation_leaves_the_old_run_or_the_new_one(old_run: Path, command: str,
                                                                                     tmp_path: Path):
    old = snapshot(old_run)
    home = fresh_copy(old_run, tmp_path / "reference")
    signum, total = run_killed(command, home)
    assert signum == 0 and total > 5, (signum, total)
    new = snapshot(home)
    assert new != old
    points = sorted({round(1 + i * (total - 1) / (POINTS - 1)) for i in range(POINTS)}) if total > POINTS \
        else list(range(1, total + 1))
    seen = {}
    for k in points:
        home = fresh_copy(old_run, tmp_path / "killed")
        signum, _ = run_killed(command, home, kill_at=k)
        assert signum == signal.SIGKILL, f"{command}: not killed at operation {k} of {total}"
        with Run.open(home).lock("netwright (the next writer)"):  # clears the lock, completes or undoes
            pass
        try:
            seen[k] = judge(snapshot(home), old, new)
        except AssertionError as e:
            raise AssertionError(f"{command} killed at file operation {k} of {total}: {e}") from None
        left = sorted(p.name for p in home.parent.iterdir() if p.name != "r")
        assert left == [], f"{command} killed at operation {k} of {total}: left {left} beside the run"
        assert not list(home.rglob(".journal-*")), f"{command} killed at operation {k}: a journal stayed"
    print(f"{command}: {total} file operations; killed at {points}: {seen}")
    # the early kills give the old run, and a kill at the very last operation (removing the lock) the new one
    assert seen[points[0]] == "old" and seen[points[-1]] == "new", seen
