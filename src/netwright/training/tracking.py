"""Experiment tracking (``train.log``): TensorBoard event files and MLflow runs.

``train.log: [tensorboard]`` writes ``RUN/tensorboard/`` event files: every numeric value of a
``metrics.jsonl`` row as a scalar at the row's ``step`` (the global optimizer step at the end of
the epoch), stored in double precision so that they read back equal to ``metrics.jsonl``.

``train.log: [mlflow]`` opens an MLflow run (experiment ``netwright``, or $MLFLOW_EXPERIMENT_NAME)
at the tracking URI ``train.mlflow_uri``, else $MLFLOW_TRACKING_URI, else a SQLite store
``sqlite:///RUNS/mlflow.db`` beside the runs (RUNS: the folder holding the run; a run nested in
another run, like a GAN's judge, uses the outer run's folder; a study's trials use the study's
parent run's URI, see :func:`start_parent`). Artefacts of that default store go to
``RUNS/mlartifacts/``. It logs the flattened resolved spec as params (``train.optimizer.lr``),
every numeric ``metrics.jsonl`` value at its step, and at the end ``model.safetensors``,
``spec.yaml`` and ``train.json``. ``RUN/tracking.json`` records the MLflow run id and URI:
``--resume`` continues that MLflow run, ``netwright report`` and ``netwright export`` log the
model card and the verified ONNX file to it, and ``netwright export --register NAME`` makes a
version of registered model NAME from that very ONNX file.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import NetwrightError
from .callbacks import Callback
from ..run import SPEC, TRACKING, TRAIN, WEIGHTS

TRACKING_FILE = TRACKING
EXPERIMENT = "netwright"
MAX_PARAM_LENGTH = 6000  # mlflow.utils.validation.MAX_PARAM_VAL_LENGTH
MAX_KEY_LENGTH = 250
STAGING = re.compile(r"^\..+\.new-")  # run.py: a run being built beside its home
BATCH = 100  # params (and metrics, well under MLflow's 1000) per log_batch call

_parent: tuple[str, str] | None = None  # (MLflow run id, tracking URI) of the study the trials belong to
_unfinished: dict[str, Any] = {}  # MLflow run id -> client: runs opened here and not ended yet


# ---------------------------------------------------------------------- optional extras


def _mlflow(what: str = "train.log: mlflow") -> Any:
    try:
        import mlflow
    except ImportError:
        raise NetwrightError(f"{what} needs MLflow; pip install 'netwright[mlflow]'") from None
    for noisy in ("mlflow.store.db.utils", "alembic", "alembic.runtime.migration"):  # "creating tables..."
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return mlflow


def _summary_writer() -> Any:
    try:
        import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise NetwrightError("train.log: tensorboard needs TensorBoard; pip install 'netwright[tensorboard]'") from None
    return SummaryWriter


@contextlib.contextmanager
def _store_errors(where: str) -> Iterator[None]:
    """A failure of the tracking store as one line naming what was being done."""
    try:
        yield
    except NetwrightError:
        raise
    except Exception as e:  # MLflow, SQLAlchemy, HTTP: whatever the store raises
        text = (getattr(e, "message", None) or str(e) or type(e).__name__).strip().splitlines()
        raise NetwrightError(f"{where}: {text[0] if text else type(e).__name__}") from e


# ---------------------------------------------------------------------- what is logged


def numeric(record: dict[str, Any]) -> dict[str, float]:
    """The finite numeric values of a ``metrics.jsonl`` row, ``step`` excluded (it is the x axis)."""
    return {k: float(v) for k, v in record.items()
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def flatten(obj: dict[str, Any]) -> dict[str, str]:
    """A nested mapping (the resolved spec) as MLflow params: dotted keys (``train.optimizer.lr``);
    strings as they are, anything else (numbers, lists, null) as compact JSON; values cut to
    MLflow's 6000 characters (ending in ``...``)."""
    from ..spec import flatten as dotted

    out: dict[str, str] = {}
    for key, v in dotted(obj).items():
        value = v if isinstance(v, str) else json.dumps(v, separators=(",", ":"), sort_keys=True)
        if len(value) > MAX_PARAM_LENGTH:
            value = value[:MAX_PARAM_LENGTH - 3] + "..."
        out[_key(key)] = value
    return out


def _key(key: str) -> str:
    """An MLflow key: letters, digits, ``_ - . / space``, at most 250 characters."""
    return re.sub(r"[^\w\-. /]", "_", key)[:MAX_KEY_LENGTH]


def spec_params(run: Any) -> dict[str, str]:
    """The run's ``spec.yaml`` (the resolved spec), flattened as params."""
    import yaml

    return flatten(yaml.safe_load(run.file(SPEC).read_text(encoding="utf-8")) or {})


# ---------------------------------------------------------------------- where


def runs_folder(run: Any) -> Path:
    """The folder of runs that holds ``run``: its parent, or for a run nested inside another run
    (a GAN's judge) the outer run's parent."""
    folder = Path(run.home).resolve().parent
    while (folder / SPEC).is_file() or STAGING.match(folder.name):  # a run, or a run being built
        folder = folder.parent
    return folder


def tracking_uri(spec: Any, folder: str | os.PathLike) -> str:
    """``train.mlflow_uri``, else $MLFLOW_TRACKING_URI, else ``sqlite:///FOLDER/mlflow.db``."""
    uri = getattr(spec.train, "mlflow_uri", None) or os.environ.get("MLFLOW_TRACKING_URI")
    return uri or f"sqlite:///{Path(folder).resolve() / 'mlflow.db'}"


def _client(uri: str, what: str = "train.log: mlflow", where: str | None = None) -> Any:
    _mlflow(what)
    from mlflow import MlflowClient

    with _store_errors(where or f"MLflow tracking URI {uri}"):
        return MlflowClient(tracking_uri=uri, registry_uri=os.environ.get("MLFLOW_REGISTRY_URI") or uri)


def _experiment(client: Any, uri: str, name: str | None = None) -> str:
    """The id of the experiment (created on first use; a SQLite store keeps its artefacts beside it)."""
    from mlflow.exceptions import MlflowException

    name = name or os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
    with _store_errors(f"MLflow tracking URI {uri}"):
        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = None
        if uri.startswith("sqlite:///") and ":memory:" not in uri:
            location = (Path(uri[len("sqlite:///"):]).resolve().parent / "mlartifacts").as_uri()
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException as e:  # created meanwhile by another process
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return client.get_experiment_by_name(name).experiment_id


def _log_batch(client: Any, run_id: str, metrics: list[Any] = (), params: dict[str, str] | None = None) -> None:
    from mlflow.entities import Metric, Param

    items = [Param(k, v) for k, v in (params or {}).items()]
    for i in range(0, len(items), BATCH):
        client.log_batch(run_id, params=items[i:i + BATCH])
    metrics = list(metrics)
    for i in range(0, len(metrics), BATCH):
        client.log_batch(run_id, metrics=[Metric(*m) for m in metrics[i:i + BATCH]])


def _metric_rows(record: dict[str, Any], skip: dict[str, set[int]] | None = None) -> list[tuple]:
    """(key, value, timestamp ms, step) of a ``metrics.jsonl`` row, less the (key, step) in ``skip``."""
    now, step = int(time.time() * 1000), int(record.get("step", record.get("epoch", 0)))
    return [(_key(k), v, now, step) for k, v in numeric(record).items()
            if not (skip and step in skip.get(_key(k), ()))]


def tracked(run: Any) -> dict[str, Any] | None:
    """The ``mlflow`` entry of ``RUN/tracking.json`` (run_id, tracking_uri, experiment_id), if any."""
    if not run.has(TRACKING_FILE):
        return None
    return run.read_json(TRACKING_FILE).get("mlflow")


def _record(run: Any, key: str, value: Any) -> None:
    body = run.read_json(TRACKING_FILE) if run.has(TRACKING_FILE) else {}
    body[key] = value
    run.write_json(TRACKING_FILE, body)


def _open_run(run: Any, spec: Any, source: str) -> tuple[Any, dict[str, Any]]:
    """A new MLflow run for ``run`` (a child of the active study's run, if any), its params logged
    and its id recorded in ``tracking.json``."""
    parent = _parent
    uri = parent[1] if parent else tracking_uri(spec, runs_folder(run))
    client = _client(uri)
    with _store_errors(f"MLflow tracking URI {uri}"):
        experiment = (client.get_run(parent[0]).info.experiment_id if parent else _experiment(client, uri))
        tags = {"mlflow.source.name": source, "mlflow.source.type": "LOCAL", "netwright.run": str(run.home)}
        if parent:
            tags["mlflow.parentRunId"] = parent[0]
        mlrun = client.create_run(experiment, run_name=run.name, tags=tags)
        run_id = mlrun.info.run_id
        _unfinished[run_id] = client
        _log_batch(client, run_id, params=spec_params(run))
    entry = {"run_id": run_id, "tracking_uri": uri, "experiment_id": experiment,
             **({"parent_run_id": parent[0]} if parent else {})}
    _record(run, "mlflow", entry)
    return client, entry


def _finish(client: Any, run_id: str, status: str = "FINISHED") -> None:
    client.set_terminated(run_id, status=status)
    _unfinished.pop(run_id, None)


@atexit.register
def _end_unfinished() -> None:
    """MLflow runs a process opened and did not end (an interrupt, a failure): KILLED, not RUNNING."""
    for run_id, client in list(_unfinished.items()):
        with contextlib.suppress(Exception):
            client.set_terminated(run_id, status="KILLED")
    _unfinished.clear()


# ---------------------------------------------------------------------- callbacks


class TensorBoardTracker(Callback):
    """``RUN/tensorboard/`` event files: every numeric metrics.jsonl value at the row's step.

    A new run is built in a staging folder that moves to its home at its first checkpoint (or at
    the end); TensorBoard's writer opens its file by name at each write, so it is reopened where
    the run is now: the folder may hold more than one event file, read as one by TensorBoard.
    """

    name = "tensorboard"

    def __init__(self) -> None:
        self.writer: Any = None
        self.folder: Path | None = None

    def on_train_start(self, run: Any, state: dict[str, Any]) -> None:
        # resumed: values logged after the checkpoint (before a crash) are dropped, then logged again
        self._open(run, purge=state["step"] + 1 if state.get("step") else None)

    def _open(self, run: Any, purge: int | None = None) -> Any:
        if self.writer is None or self.folder != run.file("tensorboard"):
            self.close()
            self.folder = run.file("tensorboard")
            self.writer = _summary_writer()(log_dir=str(self.folder), purge_step=purge)
        return self.writer

    def on_epoch_end(self, run: Any, record: dict[str, Any]) -> None:
        writer = self._open(run)
        step = int(record.get("step", record.get("epoch", 0)))
        for k, v in numeric(record).items():
            writer.add_scalar(k, v, step, new_style=True, double_precision=True)
        writer.flush()  # nothing pending when the run's folder moves

    def on_train_end(self, run: Any, summary: dict[str, Any]) -> None:
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class MLflowTracker(Callback):
    """An MLflow run: the spec as params, metrics.jsonl at its steps, the weights at the end."""

    name = "mlflow"

    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self.client: Any = None
        self.run_id: str | None = None
        self.uri = ""
        self.logged: dict[str, set[int]] = {}  # resumed: the steps each metric has in MLflow already

    def on_train_start(self, run: Any, state: dict[str, Any]) -> None:
        entry = tracked(run)
        if entry is None:  # a new run
            self.client, entry = _open_run(run, self.spec, "netwright train")
            self.run_id, self.uri = entry["run_id"], entry["tracking_uri"]
            return
        # --resume: continue the MLflow run of tracking.json; log what it lacks of the history
        self.run_id, self.uri = entry["run_id"], entry["tracking_uri"]
        self.client = _client(self.uri)
        with _store_errors(f"MLflow run {self.run_id} at {self.uri} (from {run.file(TRACKING_FILE)})"):
            self.client.update_run(self.run_id, status="RUNNING")
            _unfinished[self.run_id] = self.client
            keys = {_key(k) for r in state.get("history", []) for k in numeric(r)}
            self.logged = {k: {m.step for m in self.client.get_metric_history(self.run_id, k)} for k in keys}
            for r in state.get("history", []):
                _log_batch(self.client, self.run_id, _metric_rows(r, self.logged))

    def on_epoch_end(self, run: Any, record: dict[str, Any]) -> None:
        with _store_errors(f"MLflow run {self.run_id} at {self.uri}"):
            _log_batch(self.client, self.run_id, _metric_rows(record, self.logged))

    def on_train_end(self, run: Any, summary: dict[str, Any]) -> None:
        with _store_errors(f"MLflow run {self.run_id} at {self.uri}"):
            for name in (WEIGHTS, SPEC, TRAIN):
                if run.has(name):
                    self.client.log_artifact(self.run_id, str(run.file(name)))
            _finish(self.client, self.run_id)


def tracking_callbacks(spec: Any) -> list[Callback]:
    """The callbacks ``spec.train.log`` asks for (rank 0 of a job only); a missing extra is an
    error here, before a run is written."""
    out: list[Callback] = []
    for name in dict.fromkeys(spec.train.log):
        if name == "tensorboard":
            _summary_writer()
            out.append(TensorBoardTracker())
        elif name == "mlflow":
            _mlflow()
            given = getattr(spec.train, "mlflow_uri", None)
            uri = given or os.environ.get("MLFLOW_TRACKING_URI")
            if uri and _parent is None:  # an unknown scheme fails here, not after the run is begun
                _client(uri, where=f"{'train.mlflow_uri' if given else '$MLFLOW_TRACKING_URI'} {uri}")
            out.append(MLflowTracker(spec))
    return out


# ---------------------------------------------------------------------- later verbs


def log_artifacts(run: Any, files: list[str | os.PathLike], artifact_path: str | None = None) -> str | None:
    """Log ``files`` of a later verb (the model card, an export) to the run's MLflow run, when
    ``tracking.json`` names one; returns its run id (None: the run is not tracked with MLflow)."""
    entry = tracked(run)
    if entry is None:
        return None
    client = _client(entry["tracking_uri"], f"{run.file(TRACKING_FILE)} (an MLflow run)")
    with _store_errors(f"MLflow run {entry['run_id']} at {entry['tracking_uri']}"):
        for f in files:
            client.log_artifact(entry["run_id"], str(f), artifact_path)
    return entry["run_id"]


def _mlmodel(folder: Path, onnx_name: str) -> Path:
    """An ``MLmodel`` file of the onnx flavour, so that ``mlflow.onnx.load_model`` reads the folder."""
    from mlflow.models import Model

    model = Model()
    try:
        import onnx

        version = onnx.__version__
    except ImportError:  # pragma: no cover - export needs onnx
        version = None
    model.add_flavor("onnx", onnx_version=version, data=onnx_name, providers=["CPUExecutionProvider"],
                     code=None)
    model.save(folder / "MLmodel")
    return folder / "MLmodel"


def log_export(run: Any, onnx_path: str | os.PathLike, register: str | None = None) -> dict[str, Any] | None:
    """After a verified export: the ONNX file (byte for byte), its ``verify.json`` and an ``MLmodel``
    go to the run's MLflow run under the same relative folder (``export/``); with ``register``, a
    new version of registered model ``register`` is made from that folder. An untracked run is
    left alone, unless ``register`` asks for it: then a new MLflow run is opened (and recorded).

    Returns:
        ``{"run_id", "artifact_path", "tracking_uri"}`` (plus ``"registered": {"name",
        "version"}``), or None when nothing was logged.
    """
    entry = tracked(run)
    if entry is None and register is None:
        return None
    _mlflow("--register" if entry is None else f"{run.file(TRACKING_FILE)} (an MLflow run)")
    onnx_path = Path(onnx_path)
    opened = entry is None
    if opened:
        client, entry = _open_run(run, run.spec, "netwright export")
    else:
        client = _client(entry["tracking_uri"])
    run_id, uri = entry["run_id"], entry["tracking_uri"]
    artifact_path = onnx_path.parent.resolve().relative_to(Path(run.path).resolve()).as_posix()
    out: dict[str, Any] = {"run_id": run_id, "artifact_path": artifact_path, "tracking_uri": uri}
    with _store_errors(f"MLflow run {run_id} at {uri}"), tempfile.TemporaryDirectory() as tmp:
        client.log_artifact(run_id, str(onnx_path), artifact_path)
        verify = onnx_path.parent / "verify.json"
        if verify.is_file():
            client.log_artifact(run_id, str(verify), artifact_path)
        client.log_artifact(run_id, str(_mlmodel(Path(tmp), onnx_path.name)), artifact_path)
        if opened:
            _finish(client, run_id)
    if register is not None:
        out["registered"] = _register(client, register, run_id, artifact_path, uri)
    return out


def _register(client: Any, name: str, run_id: str, artifact_path: str, uri: str) -> dict[str, Any]:
    from mlflow.exceptions import MlflowException

    registry = os.environ.get("MLFLOW_REGISTRY_URI") or uri
    with _store_errors(f"--register {name}: MLflow model registry at {registry}"):
        try:
            client.create_registered_model(name, description="ONNX models exported by netwright")
        except MlflowException as e:
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        version = client.create_model_version(name, f"runs:/{run_id}/{artifact_path}", run_id=run_id,
                                              description=f"netwright export of {artifact_path}/")
    return {"name": name, "version": int(version.version)}


# ---------------------------------------------------------------------- studies (child runs)


def start_parent(name: str, uri: str, params: dict[str, Any] | None = None, experiment: str | None = None) -> str:
    """Open the MLflow run of a study (tuning) and return its id; pair with :func:`parent_run`
    and :func:`end_parent`::

        uri = tracking_uri(spec, runs_dir)           # e.g. the study's top runs folder
        parent = start_parent(study_name, uri)
        with parent_run(parent, uri):
            ...                                      # every run trained here is a child run
        end_parent(parent, uri)

    ``params`` (nested or flat) are logged flattened, like a run's spec.
    """
    client = _client(uri)
    with _store_errors(f"MLflow tracking URI {uri}"):
        mlrun = client.create_run(_experiment(client, uri, experiment), run_name=name,
                                  tags={"mlflow.source.name": "netwright tune", "mlflow.source.type": "LOCAL"})
        _unfinished[mlrun.info.run_id] = client
        if params:
            _log_batch(client, mlrun.info.run_id, params=flatten(params))
    return mlrun.info.run_id


@contextlib.contextmanager
def parent_run(run_id: str, uri: str) -> Iterator[None]:
    """Inside the block, every MLflow-tracked run this process trains is a child run of
    ``run_id`` (tag ``mlflow.parentRunId``, the parent's experiment and tracking URI, whatever
    ``train.mlflow_uri`` says). Process-wide state: threads share it, subprocesses do not."""
    global _parent
    previous, _parent = _parent, (run_id, uri)
    try:
        yield
    finally:
        _parent = previous


def end_parent(run_id: str, uri: str, status: str = "FINISHED") -> None:
    """End a study's MLflow run (``FINISHED``, ``FAILED`` or ``KILLED``)."""
    client = _client(uri)
    with _store_errors(f"MLflow run {run_id} at {uri}"):
        _finish(client, run_id, status)
