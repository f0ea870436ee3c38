"""The run directory: everything one run produced, the contract between stages.

Every file a run holds is named once, in :data:`ARTEFACTS` below (the stage that writes it and
what it is); stages, the model card and the comparison page use these names.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .atomic import (dead_maker, finish_replace, is_mount_point, journal, make_temp_dir, pid_alive, recover,
                     replace_tree, replacing, will_make, write_json, write_text)
from .errors import CallbackFailed, NetwrightError, RunLocked, TrainingInterrupted

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from .data.info import DataInfo, Dataset
    from .spec import Spec

# ---------------------------------------------------------------------- the run's artefacts

SPEC, DATA, PLUGINS, TOKENIZER = "spec.yaml", "data.json", "plugins.json", "tokenizer.json"
METRICS, TIMING, TRAIN, WEIGHTS = "metrics.jsonl", "timing.jsonl", "train.json", "model.safetensors"
CHECKPOINT, CHECKPOINT_STATE, TRACKING = "checkpoints/last.safetensors", "checkpoints/last.json", "tracking.json"
CONTINUAL, CALIBRATION, EVAL = "continual.json", "calibration.json", "eval.json"
EXPLAIN, AUDIT, MITIGATE, THRESHOLDS = "explain/explain.json", "audit.json", "fairness/mitigate.json", "fairness/thresholds.json"
COMPRESS, VERIFY, REPORT_JSON, REPORT_HTML = "compress/compress.json", "export/verify.json", "report.json", "report.html"
REPLACES = "replaces.json"

#: path in the run -> (the stage that writes it, what it holds)
ARTEFACTS: dict[str, tuple[str, str]] = {
    SPEC: ("train", "the resolved spec, every default filled in"),
    DATA: ("train", "the data's facts (DataInfo), split sizes, preprocessing and fingerprint"),
    PLUGINS: ("train", "the plugin files and modules the run used, each file's SHA-256"),
    TOKENIZER: ("train", "a text run's tokenizer"),
    METRICS: ("train", "one JSON object per epoch: losses, validation metrics, learning rate"),
    TIMING: ("train", "seconds and samples/s per epoch (apart, so that metrics.jsonl is reproducible)"),
    TRAIN: ("train", "the summary: best epoch, stopping, time, peak memory, threads, precision, compute"),
    CHECKPOINT: ("train", "the last checkpoint's weights"),
    CHECKPOINT_STATE: ("train", "its optimizer, generator states, epoch and position in the epoch"),
    WEIGHTS: ("train", "the kept weights"),
    TRACKING: ("train", "the MLflow run this run logs to"),
    CONTINUAL: ("train", "continual learning: accuracy on every task after each"),
    CALIBRATION: ("calibrate", "the temperature fitted on the validation split's temperature rows"),
    EVAL: ("evaluate", "a split's metrics beside the baseline (pictures in eval/)"),
    EXPLAIN: ("explain", "attributions, sanity checks and pictures (explain/)"),
    AUDIT: ("audit", "decisions by group with signed intervals"),
    MITIGATE: ("mitigate", "the mitigations side by side, judged (variants in fairness/)"),
    THRESHOLDS: ("mitigate", "group thresholds deployed by predict"),
    COMPRESS: ("compress", "the compressed variants against the original (variants in compress/)"),
    VERIFY: ("export", "the ONNX file's verification (export/model.onnx)"),
    REPORT_JSON: ("report", "the model card as data"),
    REPORT_HTML: ("report", "the model card"),
    REPLACES: ("train", "only in NAME.overwrite, an interrupted --overwrite kept beside the run NAME it replaces "
                        "once resumed to the end"),
}
PARKED = ".overwrite"  # runs/NAME.overwrite: an interrupted --overwrite, resumable, beside the run it would replace

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_NAME = 100  # file systems allow 255 bytes; the staging and lock names add to it
_held: dict[Path, int] = {}  # locks this process holds, with their depth (a stage may call another)


def default_runs_dir() -> Path:
    """``NETWRIGHT_RUNS`` or ``./runs``."""
    return Path(os.environ.get("NETWRIGHT_RUNS", "runs"))


class Run:
    """A run directory. Open an existing one with :meth:`open`."""

    def __init__(self, path: str | os.PathLike, home: str | os.PathLike | None = None, new: bool = False):
        self.path = Path(path)  # where files are written now: a staging folder until commit()
        self.home = Path(home) if home is not None else self.path  # where the run lives once committed
        self.new = new  # no run was at home before this one (a checkpoint may commit it early)

    def __repr__(self) -> str:
        return f"Run('{self.home}')"

    @property
    def name(self) -> str:
        return self.home.name

    # ------------------------------------------------------------------ create / open

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Run":
        """Open a run directory written by ``train``."""
        p = Path(path)
        if not p.exists() and not p.is_absolute() and (default_runs_dir() / p).exists():
            p = default_runs_dir() / p  # a bare run name
        if not p.is_dir() and replacing(p):  # a writer died halfway through replacing the run
            with cls(p).lock("netwright (finishing a replacement)"):
                pass
        if not p.is_dir():
            raise NetwrightError(f"{path}: no such run directory; 'netwright runs' lists the runs")
        if not (p / SPEC).is_file() or not (p / DATA).is_file():
            raise NetwrightError(f"{p}: not a run directory (no spec.yaml/data.json); train one with "
                                 "'netwright train SPEC'")
        if (p / REPLACES).is_file():  # an interrupted --overwrite: it goes home when it finishes
            try:
                home = p.parent / str(json.loads((p / REPLACES).read_text(encoding="utf-8"))["run"])
            except (OSError, ValueError, KeyError, TypeError):
                raise NetwrightError(f"{p / REPLACES}: damaged; delete {p} and train again") from None
            return cls(p, home=home)
        return cls(p)

    @classmethod
    def create(cls, name: str, runs_dir: str | os.PathLike | None = None, overwrite: bool = False,
               explicit: bool = True) -> "Run":
        """Make a new run directory.

        An existing run is replaced only with ``overwrite``; otherwise an explicit name is an
        error and a derived one gets a ``-2``, ``-3``... suffix.
        """
        if not NAME_RE.match(name) or len(name) > MAX_NAME:
            raise NetwrightError(f"run name {name[:40]!r}{'...' if len(name) > 40 else ''}: use at most {MAX_NAME} "
                                 "letters, digits, '.', '_' and '-' (no slashes)")
        base = Path(runs_dir) if runs_dir is not None else default_runs_dir()
        path = base / name
        if path.is_symlink():  # the run lives where the link points: it is replaced there
            path = path.resolve()
            base = path.parent
        if path.exists() and not path.is_dir():
            raise NetwrightError(f"{path}: exists and is not a run directory; pick another --name")
        if path.exists():
            if overwrite:
                if any(path.iterdir()) and not (path / SPEC).is_file():
                    raise NetwrightError(f"{path}: exists and is not a run directory; refusing to overwrite it")
                if is_mount_point(path):
                    raise NetwrightError(f"{path}: is a mount point, which cannot be replaced in one step; train "
                                         "under another --name, or mount the folder that holds the runs instead")
            elif explicit:
                resumable = (path / "checkpoints" / "last.safetensors").is_file()
                raise NetwrightError(f"run '{name}' already exists at {path}; pick another --name"
                                     f"{', pass --overwrite to replace it, or --resume to continue it' if resumable else ' or pass --overwrite to replace it'}")
            else:
                i = 2
                while (base / f"{name}-{i}").exists():
                    i += 1
                path = base / f"{name}-{i}"
        # built beside its home and moved there by commit(): a failure leaves the old run as it was
        staging = make_temp_dir(_staging_prefix(path), base)
        return cls(staging, home=path, new=not path.exists())

    # ------------------------------------------------------------------ transactions

    @property
    def lock_file(self) -> Path:
        """Beside the real folder (links resolved), so that every path to a run shares its lock."""
        real = self.home.resolve()
        return real.parent / f".{real.name}.lock"

    @contextlib.contextmanager
    def transaction(self, command: str) -> Iterator["Run"]:
        """Hold the run's lock while ``command`` writes into it; a run being built is committed
        when the block ends (or is interrupted after a checkpoint) and discarded on any failure."""
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(self.lock(command))
            except BaseException:  # another writer holds it: what this one began building goes
                self.discard()
                raise
            try:
                yield self
            except (TrainingInterrupted, CallbackFailed) as e:  # stopped with a checkpoint: resumable
                if not (self.path / "checkpoints" / "last.safetensors").is_file():
                    self.discard()
                    raise
                if self.path == self.home:  # home already (a new run moves there at its first checkpoint)
                    raise
                if self.new:
                    self._commit_or_discard()
                    raise
                raise self.park(e) from None
            except BaseException:
                self.discard()
                raise
            self._commit_or_discard()

    def commit(self) -> None:
        """Move a run being built to its home, replacing the run that was there: the old run is
        set aside, the new one moved in, then the old one removed (``atomic.replace_tree``: a crash
        leaves one of the two, which the next writer completes); inside a stage that builds this
        run in its own folder, the old run goes into that stage's journal instead."""
        if self.path == self.home:
            return
        (self.path / REPLACES).unlink(missing_ok=True)
        replace_tree(self.path, self.home)
        self.path, self.new = self.home, False

    def _commit_or_discard(self) -> None:
        try:
            self.commit()
        except OSError as e:  # e.g. EBUSY: the run folder is a mount point
            parked = self.path.name.endswith(PARKED) and (self.path / "checkpoints").is_dir()
            if not parked:
                self.discard()
            raise NetwrightError(f"{self.home}: could not move the finished run there ({e.strerror or e}); "
                                 f"{'the old run is unchanged' if self.home.exists() else 'nothing was written'}"
                                 + (f"; the new run is kept at {self.path}" if parked else "")) from None

    def park(self, stopped: NetwrightError) -> NetwrightError:
        """An interrupted ``--overwrite``: the old run stays as it was; the new one, resumable, moves
        beside it to NAME.overwrite (replacing an earlier interrupted one), and goes home when a
        ``--resume`` finishes it. Returns the error to raise, telling the user so."""
        parked = self.home.parent / f"{self.home.name}{PARKED}"
        if self.path != parked:
            write_json(self.path / REPLACES, {"run": self.home.name})
            if parked.exists():
                shutil.rmtree(parked)
            os.rename(self.path, parked)
            self.path = parked
        first = str(stopped).split(";", 1)[0]
        message = (f"{first}; the run {self.home} is unchanged. The interrupted overwrite is kept at {parked}: "
                   f"resume it with 'netwright train {parked} --resume' (it replaces {self.home.name} when it "
                   f"finishes), or delete that folder")
        if isinstance(stopped, TrainingInterrupted):
            return TrainingInterrupted(message, stopped.signum)
        return CallbackFailed(message)

    def checkpointed(self) -> None:
        """A resumable checkpoint exists: a run with nothing at its home moves there now, so that
        ``--resume`` finds it after a crash; one that replaces an earlier run waits for the end."""
        if self.new:
            self.commit()

    def discard(self) -> None:
        if self.path != self.home:
            shutil.rmtree(self.path, ignore_errors=True)

    @contextlib.contextmanager
    def lock(self, command: str) -> Iterator[None]:
        """One writer per run: a lock file beside the run names its holder (PID, host, command)."""
        path = self.lock_file
        key = path  # the real folder's (links resolved); the same folder by another name shares it
        if key in _held:  # this process holds it already (a stage calling another)
            _held[key] += 1
            try:
                yield
            finally:
                _held[key] -= 1
            return
        _acquire(path, command, self.home.resolve(), keep=self.path)
        _held[key] = 1
        try:
            with interrupts_raise():  # what the holder writes is rolled back on Ctrl-C
                yield
        finally:
            del _held[key]
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    # ------------------------------------------------------------------ files

    def file(self, rel: str) -> Path:
        return self.path / rel

    def has(self, rel: str) -> bool:
        return (self.path / rel).exists()

    def write_json(self, rel: str, obj: Any) -> Path:
        return write_json(self.path / rel, obj)

    def read_json(self, rel: str) -> Any:
        p = self.path / rel
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NetwrightError(f"{p}: missing; has this stage run yet?") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise NetwrightError(f"{p}: damaged JSON ({e})") from None

    # ------------------------------------------------------------------ contents

    @property
    def spec(self) -> "Spec":
        """The resolved spec saved at training time (the plugins it used imported first, each
        checked unchanged)."""
        from .spec import load_spec

        if self.has(PLUGINS):
            from .plugins import load_recorded

            load_recorded(self.read_json(PLUGINS), self.home)
        return load_spec(self.path / SPEC)

    def write_spec(self, spec: "Spec") -> None:
        write_text(self.path / SPEC, spec.to_yaml())

    @property
    def info(self) -> "DataInfo":
        from .data.info import DataInfo

        try:
            return DataInfo.from_dict(self.read_json(DATA))
        except (KeyError, TypeError, ValueError) as e:
            raise NetwrightError(f"{self.path / 'data.json'}: damaged ({e.__class__.__name__}: {str(e)[:80]}); "
                                 "train the run again") from None

    def metrics(self) -> list[dict[str, Any]]:
        """One dict per finished epoch (``metrics.jsonl``)."""
        p = self.path / METRICS
        if not p.is_file():
            return []
        return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]

    def load_data(self) -> "Dataset":
        """The run's dataset, split and normalised as at training time (checked by fingerprint)."""
        from .data import load_dataset

        data = load_dataset(self.spec.data)
        saved = self.read_json(DATA).get("fingerprint")
        if saved != data.info.fingerprint:
            raise NetwrightError(f"{self.path}: the data changed since training (fingerprint {saved} -> "
                                 f"{data.info.fingerprint}); restore it or train a new run")
        return data

    def load_model(self, weights: str = WEIGHTS) -> "nn.Module":
        """Rebuild the model from the spec and load its saved weights (eval mode)."""
        from .models import build_model
        from .training.checkpoint import load_model_weights

        spec = self.spec
        path = self.path / weights
        if not path.is_file():
            if (self.path / "checkpoints" / "last.safetensors").is_file():
                raise NetwrightError(f"{path}: missing; the run has no trained weights yet "
                                     f"(resume it with 'netwright train {self.path} --resume')")
            raise NetwrightError(f"{path}: missing, and the run has no checkpoint to resume; train it again with "
                                 f"'netwright train SPEC --name {self.name} --overwrite'")
        from .models.tta import add_tta

        model = build_model(spec.model.name, self.info, **spec.model.params)
        load_model_weights(model, path)
        return add_tta(model, spec.train.tta).eval()  # train.tta: outputs averaged over the input's views


def _acquire(path: Path, command: str, home: Path, keep: Path) -> None:
    host = socket.gethostname()
    for _ in range(3):
        will_make(path)  # a run built inside another run's stage: its lock is that stage's too
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text(encoding="utf-8"))
                pid, holder_host = int(holder["pid"]), str(holder["host"])
            except (OSError, ValueError, KeyError, TypeError):
                holder, pid, holder_host = None, None, host
            if holder_host == host and (pid is None or not pid_alive(pid)):
                who = f"pid {pid}, no longer running" if pid is not None else "unreadable"
                print(f"note: cleared a stale lock on {home} ({who})", file=sys.stderr)
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                continue
            raise RunLocked(f"{home}: in use by '{holder.get('command')}' (pid {pid} on {holder_host}, since "
                            f"{holder.get('since')}); wait for it to finish, or delete {path} if that process "
                            "is gone") from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"pid": os.getpid(), "host": host, "command": command,
                       "since": time.strftime("%Y-%m-%d %H:%M:%S")}, f)
        # holding the lock: what a dead writer left halfway is completed or undone
        prefix = _staging_prefix(home)
        for stale in home.parent.glob(f"{prefix}*"):  # new runs that dead processes were building
            if stale != keep and dead_maker(stale.name, prefix):
                shutil.rmtree(stale, ignore_errors=True)
        swapped = finish_replace(home)
        if swapped is not None:
            print(f"note: {swapped} the replacement of {home} that a stopped process had begun", file=sys.stderr)
        if home.is_dir() and recover(home):
            print(f"note: undid what an unfinished stage of a stopped process had changed in {home}", file=sys.stderr)
        return
    raise RunLocked(f"{home}: could not take its lock {path}; try again")


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """While the block runs, SIGINT raises KeyboardInterrupt (Python's own handler), whatever the
    command line had set (``netwright.entry``: outside a transaction it ends the process at once)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def _staging_prefix(home: Path) -> str:
    return f".{home.name}.new-"


def writes_run(command: str) -> Any:
    """Decorate a stage whose first argument is a run: it runs holding the run's lock, as a
    transaction (a stage that fails leaves the run byte for byte as it was: ``atomic.journal``)."""
    import functools

    def wrap(fn: Any) -> Any:
        @functools.wraps(fn)
        def inner(run: "Run | str | os.PathLike", *args: Any, **kwargs: Any) -> Any:
            run = run if isinstance(run, Run) else Run.open(run)
            try:
                with run.lock(command), journal(run.path):
                    return fn(run, *args, **kwargs)
            except TrainingInterrupted as e:  # a model trained inside the stage: its checkpoint went with the rollback
                name = signal_name(e.signum)
                raise TrainingInterrupted(f"{name}: {command} stopped; what it had written is undone and {run.home} "
                                          "is as it was; run the command again to start it over", e.signum) from None
        return inner
    return wrap


def signal_name(signum: int) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def list_runs(runs_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """A summary row per run directory under ``runs_dir``."""
    base = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    rows = []
    if not base.is_dir():
        return rows
    for p in sorted(base.iterdir()):
        if p.name.startswith(".") or not (p / SPEC).is_file():  # runs being built, locks
            continue
        row: dict[str, Any] = {"name": p.name, "path": str(p)}
        try:
            raw = yaml.safe_load((p / SPEC).read_text(encoding="utf-8"))
            row["dataset"], row["model"] = raw["data"]["name"], raw["model"]["name"]
            summary = json.loads((p / "train.json").read_text()) if (p / "train.json").is_file() else {}
            history = Run(p).metrics()
            row["epochs"] = len(history)
            row["status"] = "finished" if summary.get("finished") else "incomplete"
            if summary.get("monitor"):
                row["best"] = f"{summary['monitor']} {summary['best_value']:.4g}"
            if (p / "eval.json").is_file():
                ev = json.loads((p / "eval.json").read_text())
                key = ev.get("headline")  # the metric the run's kind leads with (written by evaluate)
                if key is None:  # an eval.json written before kinds named it
                    key = next((k for k in ("accuracy", "r2") if k in ev["metrics"]), None)
                if key is not None and isinstance(ev["metrics"].get(key), (int, float)):
                    row["test"] = f"{key} {ev['metrics'][key]:.4g}"
        except Exception:  # a damaged run is still listed
            row["status"] = "unreadable"
        rows.append(row)
    return rows
