"""Tracking (train.log): the MLflow run holds the resolved spec as params and metrics.jsonl at its
steps, the TensorBoard event files hold the same values, later verbs log to the same MLflow run,
``export --register`` registers the very ONNX file, and ``--resume`` continues the MLflow run."""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path

import pytest
import yaml

import netwright
from netwright.errors import NetwrightError, TrainingInterrupted
from netwright.run import Run
from netwright.training.callbacks import Callback
from netwright.training.tracking import flatten, numeric

from conftest import tiny_spec

pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")
# MLflow's SQLite store on SQLAlchemy 2.1 (not ours to fix)
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")


@pytest.fixture(scope="module")
def _empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with its tables made (2-3 s), copied by each test instead."""
    from mlflow import MlflowClient

    db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture(autouse=True)
def _mlflow_env(monkeypatch: pytest.MonkeyPatch, _runs_dir: Path, _empty_store: Path) -> None:
    """The default store (sqlite:///RUNS/mlflow.db in the test's folder), no progress bars."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    _runs_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_empty_store, _runs_dir / "mlflow.db")


def client_for(run: Run):
    from mlflow import MlflowClient

    entry = run.read_json("tracking.json")["mlflow"]
    return MlflowClient(entry["tracking_uri"], registry_uri=entry["tracking_uri"]), entry


def assert_mlflow_metrics_equal_jsonl(client, run_id: str, run: Run) -> None:
    rows = run.metrics()
    keys = {k for r in rows for k in numeric(r)}
    assert {"epoch", "lr", "train_loss", "val_loss", "val_accuracy"} <= keys
    for key in keys:
        got = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        assert got == [(r["step"], float(r[key])) for r in rows if key in numeric(r)], key


def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the event files in ``folder``, read back with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    acc = EventAccumulator(str(folder), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    assert acc.Tags()["scalars"] == []  # stored as double-precision tensors, not float32 scalars
    return {tag: [(e.step, tensor_util.make_ndarray(e.tensor_proto).item()) for e in acc.Tensors(tag)]
            for tag in acc.Tags()["tensors"]}


def assert_tensorboard_equals_jsonl(run: Run) -> None:
    rows = run.metrics()
    expected: dict[str, list[tuple[int, float]]] = {}
    for r in rows:
        for k, v in numeric(r).items():
            expected.setdefault(k, []).append((r["step"], v))
    assert tensorboard_scalars(run.file("tensorboard")) == expected  # exact: float64 both sides


def test_mlflow_and_tensorboard_record_the_run_and_export_registers_the_onnx_file(cli, tmp_path: Path):
    import mlflow

    run = netwright.train(tiny_spec(log=["tensorboard", "mlflow"]), name="tracked", progress="quiet")
    client, entry = client_for(run)
    assert entry["tracking_uri"] == f"sqlite:///{(tmp_path / 'runs' / 'mlflow.db').resolve()}"
    mlrun = client.get_run(entry["run_id"])
    assert mlrun.info.status == "FINISHED" and mlrun.info.run_name == "tracked"
    # params: the resolved spec of spec.yaml, flattened
    resolved = yaml.safe_load(run.file("spec.yaml").read_text())
    params = mlrun.data.params
    assert params == flatten(resolved)
    assert params["data.name"] == "iris" and params["model.hidden"] == "[16]" and params["train.epochs"] == "3"
    assert params["train.optimizer.lr"] == str(resolved["train"]["optimizer"]["lr"])
    assert_mlflow_metrics_equal_jsonl(client, entry["run_id"], run)
    assert_tensorboard_equals_jsonl(run)
    names = {a.path for a in client.list_artifacts(entry["run_id"])}
    assert {"model.safetensors", "spec.yaml", "train.json"} <= names

    # later verbs log to the same MLflow run
    assert cli("report", run.path).code == 0
    assert {a.path for a in client.list_artifacts(entry["run_id"], "report")} == {"report/report.html",
                                                                                  "report/report.json"}
    r = cli("export", run.path, "--register", "iris-mlp")
    assert r.code == 0, r.err
    assert "registered MLflow model iris-mlp version 1" in r.out
    version = client.get_model_version("iris-mlp", "1")
    assert version.run_id == entry["run_id"]
    with pytest.MonkeyPatch.context() as mp:  # models:/ URIs resolve in the registry of the environment
        mp.setenv("MLFLOW_TRACKING_URI", entry["tracking_uri"])
        got = Path(mlflow.artifacts.download_artifacts(artifact_uri="models:/iris-mlp/1", dst_path=str(tmp_path / "dl")))
    assert (got / "model.onnx").read_bytes() == run.file("export/model.onnx").read_bytes()
    assert len(client.search_runs([entry["experiment_id"]])) == 1  # nothing opened a second MLflow run


class InterruptAfter(Callback):
    """SIGINT at the end of epoch ``n``: the trainer checkpoints and stops."""

    def __init__(self, n: int):
        self.n = n

    def on_epoch_end(self, run, record):
        if record["epoch"] == self.n:
            signal.raise_signal(signal.SIGINT)


def test_a_resumed_run_continues_its_mlflow_run_and_event_files():
    spec = tiny_spec(epochs=4, checkpoint_interval=0, log=["tensorboard", "mlflow"])
    with pytest.raises(TrainingInterrupted):
        netwright.train(spec, name="cut", progress="quiet", callbacks=[InterruptAfter(2)])
    cut = Run.open("cut")
    first = cut.read_json("tracking.json")["mlflow"]["run_id"]
    netwright.train(cut.path, resume=True, progress="quiet")
    client, entry = client_for(cut)
    assert entry["run_id"] == first and len(cut.metrics()) == 4
    assert [r.info.run_id for r in client.search_runs([entry["experiment_id"]])] == [first]
    assert client.get_run(first).info.status == "FINISHED"
    assert_mlflow_metrics_equal_jsonl(client, first, cut)  # no step twice
    assert_tensorboard_equals_jsonl(cut)


@pytest.mark.parametrize("extra", ["mlflow", "tensorboard"])
def test_a_missing_extra_is_one_line_before_a_run_is_written(extra: str, monkeypatch: pytest.MonkeyPatch,
                                                             _runs_dir: Path):
    monkeypatch.setitem(sys.modules, extra, None)  # import fails as if not installed
    with pytest.raises(NetwrightError, match=rf"pip install 'netwright\[{extra}\]'"):
        netwright.train(tiny_spec(log=[extra]), name="x", progress="quiet")
    assert not (_runs_dir / "x").exists()


def test_a_bad_tracking_uri_is_one_line_and_leaves_no_run(_runs_dir: Path):
    with pytest.raises(NetwrightError, match="^train.mlflow_uri nosuch://nowhere: .*unsupported URI") as e:
        netwright.train(tiny_spec(log=["mlflow"], mlflow_uri="nosuch://nowhere"), name="x", progress="quiet")
    assert "\n" not in str(e.value)
    assert not (_runs_dir / "x").exists() and not any(_runs_dir.glob(".x.new-*"))


def test_runs_trained_inside_a_study_parent_run_are_its_child_runs(_runs_dir: Path):
    from mlflow import MlflowClient

    from netwright.training import tracking

    uri = f"sqlite:///{_runs_dir.resolve() / 'mlflow.db'}"  # the top runs folder, not the study's
    parent = tracking.start_parent("study", uri, params={"sampler": {"name": "tpe"}})
    with tracking.parent_run(parent, uri):
        trial = netwright.train(tiny_spec(epochs=1, log=["mlflow"]), name="trial-0000", runs_dir=_runs_dir / "study",
                                progress="quiet")
    tracking.end_parent(parent, uri)
    entry = trial.read_json("tracking.json")["mlflow"]
    assert entry["tracking_uri"] == uri and entry["parent_run_id"] == parent
    client = MlflowClient(uri)
    assert client.get_run(entry["run_id"]).data.tags["mlflow.parentRunId"] == parent
    study = client.get_run(parent)
    assert study.info.status == "FINISHED" and study.data.params == {"sampler.name": "tpe"}
    assert not (_runs_dir / "study" / "mlflow.db").exists()
