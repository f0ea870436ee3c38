"""The ``tune`` stage: a search over a spec's values on Optuna, every trial an ordinary run.

::

    runs/<study>/tune.yaml      the spec as given, with its tune: section (--resume continues from it)
    runs/<study>/study.db       Optuna's SQLite storage (default; --storage URL names another database)
    runs/<study>/trial-0000/    each trial an ordinary run, trained by the same trainer
    runs/<study>/study.json     every trial (state, value, values, epochs), the best, its test metrics
    runs/<study>/best.yaml      the best trial's spec: an ordinary spec (netwright train best.yaml)
    runs/<study>/card.html      the study's card: the trials and Optuna's pictures

Workers are processes; each asks the storage for its next trial, so workers on several machines
share one study through a PostgreSQL server. A worker that dies (kill -9) loses only the trial
it was training: that trial is marked failed and its values are tried again. A trial's spec
value that trains to a non-finite loss fails that trial only; a spec problem (a path that does
not exist, a value out of range) stops the study with one line.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from ..atomic import pid_alive, write_json, write_text
from ..errors import NetwrightError, SpecError, TrainingError, TrainingInterrupted
from ..run import NAME_RE, TRAIN, Run, default_runs_dir
from ..spec import Spec, SpecSource, TuneParamSpec, apply_override, load_spec, raw_spec, safe_load, set_path
from ..training.callbacks import Callback
from .tune_score import direction_of, metric_of, test_metrics, trial_value

SPEC_FILE, CONFIG_FILE, STUDY_FILE, BEST_FILE, CARD_FILE, DB_FILE = (
    "tune.yaml", "tune.json", "study.json", "best.yaml", "card.html", "study.db")
MAX_RETRIES = 2  # tries of one trial's values after the first was lost with its worker
FINISHED = ("COMPLETE", "PRUNED")
SURPLUS = "surplus"  # user attribute of a trial asked for after the study had its number: never trained


class _Surplus(TrainingError):
    """Raised by a trial that found, once numbered, that earlier trials already make the study's number."""


# ------------------------------------------------------------------ the study's configuration


def trial_name(number: int) -> str:
    return f"trial-{number:04d}"


def _encoded(choices: list[Any]) -> tuple[list[Any], bool]:
    """Optuna stores scalars only: lists and mappings among the choices travel as JSON text."""
    if all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
        return list(choices), False
    return [json.dumps(c) for c in choices], True


def decode(param: TuneParamSpec, value: Any) -> Any:
    """A trial's stored value as the spec takes it."""
    if param.type == "categorical" and _encoded(param.choices)[1]:
        return json.loads(value)
    if param.type == "int":
        return int(value)
    return value


def trial_spec(raw: dict[str, Any], values: dict[str, Any], threads: int | None = None) -> dict[str, Any]:
    """The ordinary spec of one trial: the study's spec without ``tune:``, each value at its path."""
    spec = copy.deepcopy(raw)
    tune = spec.pop("tune", None) or {}
    spec.pop("name", None)
    for path, value in values.items():
        set_path(spec, path, value, f"tune.params.{path}")
    metric = tune.get("metric", "auto")
    train = spec.setdefault("train", {})
    if metric != "auto" and metric.startswith("val_") and train.get("monitor", "auto") == "auto":
        train["monitor"] = metric  # the epoch each trial keeps is the best by the study's own score
    if threads is not None and train.get("threads", "auto") == "auto":
        train["threads"] = threads
    return spec


AUTO_FOLDS, SMALL_VAL = 5, 100  # tune.folds: auto: 5 folds when the validation split holds fewer than 100 rows


def folds_of(spec: Spec) -> int | None:
    """How many cross-validation folds each trial trains (``None``: one validation split):
    ``tune.folds``, or with ``auto`` 5 when the data's validation split is small."""
    folds = spec.tune.folds
    if folds == "off" or spec.data.folds is not None:
        return None
    if isinstance(folds, int):
        return folds
    from ..data import load_dataset
    from ..data.stream import StreamedSplit

    data = load_dataset(spec.data)
    try:
        if isinstance(data.train, StreamedSplit) or data.val is None:
            return None  # streamed data is not cross-validated; without a validation split there is nothing to fold
        return AUTO_FOLDS if len(data.val) < SMALL_VAL else None
    finally:
        data.close()


def _check(raw: dict[str, Any], spec: Spec) -> None:
    """Every range end and choice makes a valid spec: problems show before any trial trains."""
    problems = []
    for path, param in spec.tune.params.items():
        if path.split(".")[0] in ("tune", "name", "plugins"):
            problems.append(f"tune.params.{path}: a trial's {path.split('.')[0]} cannot be searched")
            continue
        ends = param.choices if param.type == "categorical" else [param.low, param.high]
        for value in ends:
            value = int(value) if param.type == "int" else value
            try:
                load_spec(trial_spec(raw, {path: value}))
            except SpecError as e:
                problems += [f"tune.params.{path} = {json.dumps(value)}: {p}" for p in e.problems]
            except NetwrightError as e:
                problems.append(f"tune.params.{path} = {json.dumps(value)}: {e}")
    if spec.tune.sampler == "grid":
        problems += [f"tune.params.{p}: the grid sampler needs a step for a float range (or use type: categorical)"
                     for p, param in spec.tune.params.items() if param.type in ("float", "log") and not param.step]
    val = spec.data.val if spec.data.folds is None else 1.0
    if metric_of(spec).startswith("val_") and not val:
        problems.append(f"tune.metric: {metric_of(spec)} is scored on the validation split; set data.val above 0 "
                        "(e.g. 0.15)")
    if problems:
        raise SpecError(sorted(set(problems), key=problems.index))


def _storage_url(url: str | None, study: Path) -> str:
    return url or f"sqlite:///{(study / DB_FILE).resolve()}"


def shown_url(url: str) -> str:
    """A storage URL without its password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _storage(url: str) -> Any:
    import optuna

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}  # workers wait for each other's writes
    try:
        # a worker on another machine that stops sending heartbeats has its trial failed and retried
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=20, grace_period=120,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES),
                **kwargs)
    except ModuleNotFoundError as e:
        hint = " (pip install 'netwright[postgres]')" if "psycopg" in str(e.name) else ""
        raise NetwrightError(f"--storage {shown_url(url)}: its driver is not installed: {e.name}{hint}") from None
    except Exception as e:  # sqlalchemy's errors: a bad URL, a server that does not answer
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NetwrightError(f"--storage {shown_url(url)}: cannot open the study's database: {first}") from None


# ------------------------------------------------------------------ one worker


class _Pruning(Callback):
    """Reports the study's metric to Optuna after each epoch; stops the run when the pruner says so."""

    name = "tune"

    def __init__(self, trial: Any, metric: str):
        self.trial, self.metric, self.pruned = trial, metric, False

    def on_epoch_end(self, run: Any, record: dict[str, Any]) -> bool:
        value = record.get(self.metric)
        if value is None:
            known = ", ".join(k for k, v in record.items() if isinstance(v, (int, float)) and k not in ("epoch", "step"))
            raise SpecError([f"tune.metric: '{self.metric}' is not a column of metrics.jsonl; choose from {known}"])
        if not math.isfinite(value):
            return False
        self.trial.report(float(value), int(record["epoch"]))
        self.pruned = self.trial.should_prune()
        return self.pruned


def recover(study: Any, out: Any = None) -> list[int]:
    """Fail the trials whose worker on this machine is gone (kill -9, power loss) and queue their
    values again, at most ``MAX_RETRIES`` times; returns the numbers of the failed trials."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    host, lost = socket.gethostname(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker") or {}
        if worker.get("host") != host or pid_alive(int(worker.get("pid", 0))):
            continue
        try:
            study.tell(t.number, state=TrialState.FAIL)
        except (UpdateFinishedTrialError, ValueError, RuntimeError):  # another worker recovered it first
            continue
        lost.append(t.number)
        if not t.params:  # lost between ask and its first suggestion: no values to try again
            if out:
                out(f"trial {t.number}: its worker (pid {worker.get('pid')}) is gone before it drew values; "
                    "marked failed, a new trial takes its place")
            continue
        first = t.user_attrs.get("retry_of", t.number)
        tries = sum(1 for u in study.get_trials(deepcopy=False) if u.user_attrs.get("retry_of") == first)
        if tries < MAX_RETRIES:
            study.enqueue_trial(t.params, user_attrs={"retry_of": first})
        if out:
            out(f"trial {t.number}: its worker (pid {worker.get('pid')}) is gone; marked failed"
                + (", its values queued again" if tries < MAX_RETRIES else f", not retried ({tries} tries)"))
    return lost


def _trials(study: Any) -> list[Any]:
    """The study's trials, less the surplus ones (asked for by two workers at once, never trained)."""
    return [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(SURPLUS)]


def _counts(study: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in _trials(study):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def _is_surplus(trial: Any, target: int) -> bool:
    """Whether the trials numbered before this one, finished or still to finish, already make the
    study's number. Numbers come from the storage in order, so of two workers that asked at once
    (each having seen one trial short of the number) exactly the later one steps back."""
    from optuna.trial import TrialState

    ahead = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                            TrialState.RUNNING, TrialState.WAITING))
    return sum(1 for t in ahead if t.number < trial.number and not t.user_attrs.get(SURPLUS)) >= target


def finished(study: Any) -> int:
    c = _counts(study)
    return sum(c.get(s, 0) for s in FINISHED)


def _sampler(spec: Spec, seed: int) -> Any:
    import optuna

    kind = spec.tune.sampler
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":
        space = {}
        for path, p in spec.tune.params.items():
            if p.type == "categorical":
                space[path] = _encoded(p.choices)[0]
            else:
                n = int(round((p.high - p.low) / (p.step or 1))) + 1
                space[path] = [int(p.low + i * (p.step or 1)) if p.type == "int" else p.low + i * p.step
                               for i in range(n)]
        return optuna.samplers.GridSampler(space, seed=seed)
    if kind == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, spec.tune.trials // 3)))


def _pruner(spec: Spec) -> Any:
    import optuna

    if spec.tune.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=spec.tune.startup_trials,
                                           n_warmup_steps=spec.tune.warmup_epochs)
    if spec.tune.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=spec.train.epochs)
    return optuna.pruners.NopPruner()


def _suggest(trial: Any, path: str, p: TuneParamSpec) -> Any:
    if p.type == "categorical":
        return decode(p, trial.suggest_categorical(path, _encoded(p.choices)[0]))
    if p.type == "int":
        return trial.suggest_int(path, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    return trial.suggest_float(path, p.low, p.high, step=p.step, log=p.type == "log")


def work(study_dir: Path, index: int = 0, workers: int = 1, quiet: bool = False) -> None:
    """One worker: trains trials until the study has its number of finished trials or its time is up."""
    import optuna
    import torch

    from .train import train

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # `told` reports every trial, failures included
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    config = json.loads((study_dir / CONFIG_FILE).read_text())
    raw = safe_load((study_dir / SPEC_FILE).read_text())
    spec = load_spec(raw)
    metric, target = config["metric"], config["trials"]
    threads = None
    if workers > 1:  # the workers share this machine's cores
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = max(1, cores // workers)
        torch.set_num_threads(threads)
    study = optuna.load_study(study_name=config["name"], storage=_storage(config["storage"]),
                              sampler=_sampler(spec, spec.seed + 1000 * index), pruner=_pruner(spec))
    say = (lambda line: None) if quiet else (lambda line: print(line, flush=True))
    recover(study, say)

    def objective(trial: Any) -> float:
        trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
        if _is_surplus(trial, target):
            trial.set_user_attr(SURPLUS, True)
            raise _Surplus("the study has its number of trials")
        values = {path: _suggest(trial, path, p) for path, p in spec.tune.params.items()}
        pruning = _Pruning(trial, metric)
        try:
            if config.get("folds"):  # the mean over K folds; a fold's epochs are not comparable across trials
                return _on_folds(trial, trial_spec(raw, values, threads), config["folds"], metric)
            run = train(trial_spec(raw, values, threads), name=trial_name(trial.number), runs_dir=study_dir,
                        overwrite=True, progress="quiet", callbacks=[pruning])
        except TrainingError as e:  # e.g. a learning rate that makes the loss non-finite: this trial fails
            trial.set_user_attr("error", str(e)[:300])
            raise
        except TrainingInterrupted:  # Ctrl-C or SIGTERM: this trial's values are tried again on --resume
            trial.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.user_attrs.get("retry_of",
                                                                                              trial.number)})
            raise
        summary = run.read_json(TRAIN)
        trial.set_user_attr("run", run.name)
        trial.set_user_attr("epochs", int(summary["epochs"]))
        trial.set_user_attr("seconds", round(float(summary["seconds"]), 3))
        if pruning.pruned:
            raise optuna.TrialPruned(f"stopped after epoch {summary['epochs']}")
        return trial_value(summary, metric)

    def _on_folds(trial: Any, fold_spec: dict[str, Any], folds: int, metric: str) -> float:
        from .folds import train_folds

        result = train_folds(fold_spec, folds, name=trial_name(trial.number), runs_dir=study_dir, overwrite=True,
                             progress="quiet")
        runs = [Run.open(study_dir / trial_name(trial.number) / r["run"]).read_json(TRAIN) for r in result["rows"]]
        values = [trial_value(summary, metric) for summary in runs]
        trial.set_user_attr("run", trial_name(trial.number))
        trial.set_user_attr("folds", values)
        trial.set_user_attr("epochs", round(statistics.fmean(int(s["epochs"]) for s in runs), 1))
        trial.set_user_attr("seconds", round(sum(float(s["seconds"]) for s in runs), 3))
        return statistics.fmean(values)

    def told(study: Any, t: Any) -> None:
        if t.user_attrs.get(SURPLUS):
            return
        done = finished(study)
        best = ""
        with contextlib.suppress(ValueError):
            b = study.best_trial
            best = f"; best {b.value:.4f} (trial {b.number})"
        value = f"{metric} {t.value:.4f}" if t.value is not None else ""
        if t.state.name == "PRUNED":
            value = f"pruned after epoch {t.user_attrs.get('epochs', '?')}" + (
                f" at {metric} {t.value:.4f}" if t.value is not None else "")
        elif t.state.name == "FAIL":
            value = "failed" + (f": {t.user_attrs['error']}" if t.user_attrs.get("error") else "")
        shown = ", ".join(f"{k}={_short(v)}" for k, v in t.params.items())
        say(f"trial {t.number} [{done}/{target}]{f' (worker {index + 1})' if workers > 1 else ''}: {value}"
            f"  {shown}{best}")

    def stop_when_done(study: Any, t: Any) -> None:
        # the trials in flight count: a worker does not start one the others will finish
        running = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))
        if finished(study) + running >= target:
            study.stop()

    deadline = config.get("deadline")
    left = None if deadline is None else deadline - time.time()
    if finished(study) < target and (left is None or left > 0):
        with contextlib.ExitStack() as scope:
            if config.get("mlflow_parent"):
                from ..training.tracking import parent_run

                scope.enter_context(parent_run(config["mlflow_parent"], config["mlflow_uri"]))
            study.optimize(objective, timeout=left, catch=(TrainingError,), callbacks=[told, stop_when_done],
                           gc_after_trial=True)


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


# ------------------------------------------------------------------ the study


def tune(spec: SpecSource, overrides: list[str] | None = None, name: str | None = None,
         runs_dir: str | os.PathLike | None = None, trials: int | None = None, workers: int = 1,
         storage: str | None = None, timeout: float | None = None, resume: bool = False,
         overwrite: bool = False, quiet: bool = False) -> dict[str, Any]:
    """Search the values a spec's ``tune:`` section declares; writes the study folder.

    Args:
        spec: a YAML path or a dict with a ``tune:`` section; with ``resume=True`` also the study folder.
        overrides: ``a.b=c`` strings applied first (``tune.trials=50`` too).
        name: the study's folder under the runs folder (default: the spec's name or file stem).
        trials: finished trials to reach (default: ``tune.trials``).
        workers: processes on this machine, each training one trial at a time.
        storage: an Optuna storage URL (``postgresql://user@host/db``); default SQLite in the folder.
        timeout: seconds after which no new trial starts (default: ``tune.timeout``).
        resume: continue the study (after a crash: the lost trials are failed and tried again).
        overwrite: replace an existing study folder.
        quiet: print nothing.

    Returns:
        ``study.json``'s content: every trial, the best, and the best trial's test metrics.
    """
    import optuna

    if workers < 1:
        raise NetwrightError(f"--workers {workers}: give 1 or more worker processes")
    say = (lambda line: None) if quiet else (lambda line: print(line, flush=True))
    study_dir, raw, config = _open(spec, overrides, name, runs_dir, trials, storage, timeout, resume, overwrite)
    if config.get("timeout") is not None:
        config["deadline"] = time.time() + config["timeout"]
    spec_ = load_spec(raw)
    if "mlflow" in spec_.train.log and not config.get("mlflow_parent"):  # the trials are its child runs
        from ..training.tracking import start_parent, tracking_uri

        config["mlflow_uri"] = tracking_uri(spec_, study_dir.parent)
        config["mlflow_parent"] = start_parent(config["name"], config["mlflow_uri"], params={"tune": raw["tune"]})
    write_json(study_dir / CONFIG_FILE, config)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=config["name"], storage=_storage(config["storage"]),
                                direction=config["direction"], load_if_exists=True)
    recover(study, say)
    done = finished(study)
    say(f"tune {config['name']}: {config['metric']} ({config['direction']}), {done} of {config['trials']} trials "
        f"finished, {workers} worker{'s' * (workers > 1)}, sampler {config['sampler']}, "
        + (f"each trial on {config['folds']} cross-validation folds (a small validation split; tune.folds: off "
           "for one), not pruned, " if config.get("folds") else f"pruner {config['pruner']}, ")
        + f"storage {shown_url(config['storage'])} -> {study_dir}")
    if workers == 1:
        work(study_dir, 0, 1, quiet)
    else:
        _run_workers(study_dir, workers, config, study, say, quiet)
    summary = summarize(study_dir, study, config, raw)
    if config.get("mlflow_parent"):
        from ..training.tracking import end_parent

        end_parent(config["mlflow_parent"], config["mlflow_uri"])
    best = summary.get("best")
    if best is None:
        say(f"no trial completed; the failed ones are in {study_dir / STUDY_FILE}")
    else:
        test = f", test {_test_line(best['test'])}" if best.get("test") else ""
        say(f"best: trial {best['number']}, {config['metric']} {best['value']:.4f}{test}; "
            f"{study_dir / BEST_FILE}, {study_dir / CARD_FILE}")
    return summary


def _test_line(test: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in test.items() if isinstance(v, float))[:120]


def _open(source: SpecSource, overrides: list[str] | None, name: str | None, runs_dir: Any, trials: int | None,
          storage: str | None, timeout: float | None, resume: bool, overwrite: bool
          ) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """The study folder, its spec and its configuration: new, replaced or continued."""
    from .train import _default_name

    if resume and overwrite:
        raise NetwrightError("--resume continues a study and --overwrite replaces it; choose one")
    given = Path(source) if isinstance(source, (str, os.PathLike)) else None
    if resume and given is not None and given.is_dir():  # tune --resume runs/STUDY
        study_dir = given
    else:
        raw = raw_spec(source)
        for item in overrides or []:
            apply_override(raw, item)
        spec = load_spec(raw)
        if spec.tune is None:
            raise NetwrightError("the spec has no tune: section; add one with params, e.g. tune: {params: "
                                 "{train.optimizer.lr: {type: log, low: 1.0e-4, high: 0.01}}}")
        study_name = name or spec.name or _default_name(source, spec)
        if not NAME_RE.match(study_name):
            raise NetwrightError(f"study name {study_name!r}: use letters, digits, '.', '_' and '-' (no slashes)")
        study_dir = (Path(runs_dir) if runs_dir is not None else default_runs_dir()) / study_name
    if resume:
        if not (study_dir / CONFIG_FILE).is_file():
            raise NetwrightError(f"{study_dir}: no tuning study to resume (no {CONFIG_FILE}); start one without --resume")
        config = json.loads((study_dir / CONFIG_FILE).read_text())
        kept = safe_load((study_dir / SPEC_FILE).read_text())
        if given is not None and not given.is_dir() and (raw.get("tune") != kept.get("tune") or
                                                         trial_spec(raw, {}) != trial_spec(kept, {})):
            raise NetwrightError(f"{given}: differs from the spec study {study_dir.name} started with "
                                 f"({study_dir / SPEC_FILE}); --resume continues it as it was")
        for key, value in (("trials", trials), ("timeout", timeout)):
            if value is not None:
                config[key] = value
        if storage is not None and storage != config["storage"]:
            raise NetwrightError(f"--storage: study {study_dir.name} is stored in {shown_url(config['storage'])}")
        return study_dir, kept, config
    _check(raw, spec)
    if study_dir.exists():
        if not overwrite and storage is None:
            raise NetwrightError(f"'{study_dir.name}' already exists at {study_dir}; --resume continues it, "
                                 "--overwrite replaces it, --name picks another")
        if overwrite:
            if any(study_dir.iterdir()) and not (study_dir / CONFIG_FILE).is_file():
                raise NetwrightError(f"{study_dir}: exists and is not a tuning study; refusing to overwrite it")
            shutil.rmtree(study_dir)
    if storage is not None:
        _storage(storage)  # a database that cannot be opened is named before anything is written
    study_dir.mkdir(parents=True, exist_ok=True)
    write_text(study_dir / SPEC_FILE, (f"# the spec of tuning study {study_dir.name}\n"
                                       + __import__("yaml").safe_dump(raw, sort_keys=False)))
    config = {"name": study_dir.name, "storage": _storage_url(storage, study_dir), "metric": metric_of(spec),
              "direction": direction_of(spec), "trials": trials or spec.tune.trials,
              "timeout": timeout or spec.tune.timeout, "sampler": spec.tune.sampler, "pruner": spec.tune.pruner,
              "params": list(spec.tune.params), "folds": folds_of(spec)}
    return study_dir, raw, config


def _run_workers(study_dir: Path, workers: int, config: dict[str, Any], study: Any, say: Any, quiet: bool) -> None:
    """``workers`` processes until the study has its trials; a worker that dies loses its trial
    only (failed, its values queued again) and the rest go on; a spec problem in one stops all."""
    rounds = 0
    while finished(study) < config["trials"] and rounds < 3:
        rounds += 1
        procs = [subprocess.Popen([sys.executable, "-m", "netwright.stages.tune", str(study_dir), str(i), str(workers)]
                                  + (["--quiet"] if quiet else []), stderr=subprocess.PIPE, text=True)
                 for i in range(workers)]
        problem = None
        try:
            while procs:
                for p in list(procs):
                    if p.poll() is None:
                        continue
                    procs.remove(p)
                    message = p.stderr.read().strip()
                    if p.returncode == 2 and problem is None:
                        problem = message.splitlines()[-1] if message else "a worker stopped on a problem"
                        for q in procs:
                            q.terminate()
                    elif p.returncode < 0:
                        say(f"worker pid {p.pid} ended by signal {-p.returncode}")
                        recover(study, say)
                    elif p.returncode != 0:
                        say(f"worker pid {p.pid} failed (exit {p.returncode}): "
                            f"{message.splitlines()[-1] if message else 'no message'}")
                        recover(study, say)
                time.sleep(0.2)
        finally:
            for p in procs:
                p.kill()
                p.wait()
        recover(study, say)
        if problem:
            raise NetwrightError(problem.removeprefix("error: "))
        deadline = config.get("deadline")
        if deadline is not None and time.time() >= deadline:
            return


def _worker_main(argv: list[str]) -> int:
    """``python -m netwright.stages.tune STUDY_DIR INDEX WORKERS [--quiet]``: one worker process."""
    from ..errors import one_line

    study_dir, index, workers = Path(argv[0]), int(argv[1]), int(argv[2])
    try:
        work(study_dir, index, workers, "--quiet" in argv)
    except NetwrightError as e:
        print(f"error: {one_line(str(e))}", file=sys.stderr)
        return 2
    return 0


# ------------------------------------------------------------------ results


def trial_rows(study: Any, spec: Spec) -> list[dict[str, Any]]:
    """Every trial of the study as plain data (the spec values as the spec takes them)."""
    rows = []
    for t in _trials(study):
        rows.append({"number": t.number, "state": t.state.name, "value": t.value,
                     "params": {p: decode(spec.tune.params[p], v) if p in spec.tune.params else v
                                for p, v in t.params.items()}, "run": t.user_attrs.get("run", trial_name(t.number)),
                     "epochs": t.user_attrs.get("epochs", len(t.intermediate_values)),
                     "seconds": t.user_attrs.get("seconds"), "retry_of": t.user_attrs.get("retry_of"),
                     "worker": t.user_attrs.get("worker"),
                     "values": {str(k): v for k, v in sorted(t.intermediate_values.items())}})
    return rows


def summarize(study_dir: Path, study: Any, config: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    """study.json, best.yaml, the pictures and the card, from the storage's trials."""
    import yaml

    spec = load_spec(raw)
    rows = trial_rows(study, spec)
    summary: dict[str, Any] = {**{k: v for k, v in config.items() if k not in ("deadline", "mlflow_uri")},
                               "storage": shown_url(config["storage"]), "folder": str(study_dir), "trials_requested": config["trials"],
                               "counts": _counts(study), "epochs_trained": sum(r["epochs"] or 0 for r in rows),
                               "trials": rows, "best": None}
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    if complete:
        b = study.best_trial
        values = {p: decode(spec.tune.params[p], v) for p, v in b.params.items()}
        best = {"number": b.number, "value": b.value, "params": values, "run": b.user_attrs.get("run")}
        test = test_metrics(study_dir / best["run"] if best["run"] else None)
        if test is not None:
            best["test"] = test
        summary["best"] = best
        header = (f"# best trial {b.number} of tuning study {study_dir.name}: {config['metric']} {b.value:.4f}\n"
                  f"# train it again with: netwright train {study_dir / BEST_FILE}\n")
        write_text(study_dir / BEST_FILE, header + yaml.safe_dump(trial_spec(raw, values), sort_keys=False))
    write_json(study_dir / STUDY_FILE, summary)
    from ..report.study import write_card

    write_card(study_dir, study, summary)
    return summary


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
