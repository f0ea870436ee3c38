"""``netwright tune``: a spec's search on Optuna. Two workers share one study through SQLite and
through a throwaway PostgreSQL server and produce distinct trials, none lost or doubled; a
worker killed with SIGKILL loses only its trial (failed, its values tried again) and ``--resume``
after the whole study was killed completes it; the pruner stops lagging trials; spec problems are
one line before anything trains."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from netwright.doctor import postgres_bin
from netwright.spec import load_spec

from conftest import assert_one_line_error, needs_packages


def study_spec(trials: int = 4, epochs: int = 3, **tune) -> dict:
    """A fast study: a small MLP on iris, its learning rate and width searched."""
    return {"data": {"name": "iris", "val": 0.2}, "model": {"name": "mlp", "hidden": [16]},
            "train": {"epochs": epochs, "batch_size": 16, "threads": 1, "checkpoint_interval": 0},
            "tune": {"metric": "val_accuracy", "trials": trials, "startup_trials": 1, "warmup_epochs": 1, "folds": "off",
                     "params": {"train.optimizer.lr": {"type": "log", "low": 1e-3, "high": 0.1},
                                "model.hidden": {"type": "categorical", "choices": [[8], [16, 16]]}},
                     **tune}}


def write_spec(tmp_path: Path, spec: dict, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return path


def netwright(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netwright", *map(str, args)], capture_output=True, text=True,
                          timeout=300, **kw)


def check_study(folder: Path, trials: int, workers: int | None = None) -> dict:
    """Every finished trial is an ordinary run whose spec holds the trial's values; none doubled."""
    summary = json.loads((folder / "study.json").read_text())
    done = [t for t in summary["trials"] if t["state"] in ("COMPLETE", "PRUNED")]
    assert len(done) == trials, summary["counts"]
    numbers = [t["number"] for t in summary["trials"]]
    assert len(set(numbers)) == len(numbers)
    assert len({t["run"] for t in done}) == len(done)
    for t in done:
        spec = load_spec(folder / t["run"] / "spec.yaml")
        assert spec.train.optimizer.lr == pytest.approx(t["params"]["train.optimizer.lr"])
        assert spec.model.params["hidden"] == t["params"]["model.hidden"]
        assert spec.tune is None  # a trial is an ordinary run
        epochs = [json.loads(line)["epoch"] for line in (folder / t["run"] / "metrics.jsonl").read_text().splitlines()]
        assert len(epochs) == t["epochs"]
        if t["state"] == "COMPLETE":
            train = json.loads((folder / t["run"] / "train.json").read_text())
            kept = train["best" if train["kept"] == "best" else "final"]["val_accuracy"]
            assert kept == pytest.approx(t["value"])
    if workers:
        assert len({t["worker"]["pid"] for t in done}) == workers, [t["worker"] for t in done]
    best = summary["best"]
    assert best["value"] == max(t["value"] for t in done if t["state"] == "COMPLETE")
    best_spec = load_spec(folder / "best.yaml")  # an ordinary spec with the best values
    assert best_spec.train.optimizer.lr == pytest.approx(best["params"]["train.optimizer.lr"])
    check_best_scored_on_test(folder / best["run"], best["test"])
    return summary


def sklearn_scores(probs, y) -> dict[str, float]:
    """Every metric the study reports for a classifier, from scikit-learn (ECE: a numpy loop)."""
    import numpy as np
    from sklearn import metrics as skm

    pred = probs.argmax(1)
    conf, correct = probs.max(1), pred == y
    bins = np.minimum(np.ceil(conf * 15).astype(int) - 1, 14)  # bin b holds (b/15, (b+1)/15]
    ece = sum((bins == b).mean() * abs(correct[bins == b].mean() - conf[bins == b].mean())
              for b in range(15) if (bins == b).any())
    return {"accuracy": skm.accuracy_score(y, pred), "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
            "f1": skm.f1_score(y, pred, average="macro"), "loss": skm.log_loss(y, probs, labels=range(probs.shape[1])),
            "ece": ece}


def check_best_scored_on_test(run_dir: Path, reported: dict) -> None:
    """The best trial's test scores in study.json are its kept model's on the test split, recomputed
    here with scikit-learn from the model's own outputs; the validation split scores differently."""
    import torch

    from netwright import load_dataset
    from netwright.run import Run

    run = Run.open(run_dir)
    data, model = load_dataset(run.spec.data), run.load_model()
    scores = {}
    for split in ("test", "val"):
        part = getattr(data, split)
        with torch.no_grad():
            probs = torch.softmax(model(part.x).double(), 1).numpy()
        scores[split] = sklearn_scores(probs, part.y.numpy())
    assert scores["val"]["loss"] != pytest.approx(scores["test"]["loss"], rel=1e-3)  # the splits tell apart
    assert set(reported) == set(scores["test"]), reported
    for k, v in scores["test"].items():
        assert reported[k] == pytest.approx(v, rel=1e-6, abs=1e-9), (k, reported, scores)


def test_two_workers_share_one_sqlite_study(_runs_dir, capfd):
    from netwright.stages.tune import tune

    tune(study_spec(trials=4), name="s2", workers=2)
    summary = check_study(_runs_dir / "s2", 4, workers=2)
    assert summary["storage"].startswith("sqlite:///") and (_runs_dir / "s2" / "study.db").is_file()
    out = capfd.readouterr().out  # the workers' lines come from their own processes
    assert "(worker 1)" in out and "(worker 2)" in out and "best: trial" in out
    card = (_runs_dir / "s2" / "card.html").read_text()
    assert "Tuning study s2" in card and card.count("data:image/png;base64,") >= 2


@pytest.fixture
def postgres():
    """A PostgreSQL server of its own in a temporary folder on a free port, stopped afterwards."""
    initdb, pg_ctl = postgres_bin("initdb"), postgres_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("apt-get install postgresql (make test installs it)")
    home = Path(tempfile.mkdtemp(prefix="netwright-pg-"))  # not under pytest's folders: the server's user reads it
    data = home / "pg"
    data.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        os.chmod(home, 0o755)
        shutil.chown(data, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    subprocess.run(prefix + [initdb, "-D", str(data), "-A", "trust", "-U", "netwright"], check=True,
                   capture_output=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(prefix + [pg_ctl, "-D", str(data), "-w", "-l", str(data / "log"), "-o",
                             f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True)
    try:
        subprocess.run(prefix + [str(Path(os.path.realpath(initdb)).with_name("createdb")), "-h", "127.0.0.1", "-p", str(port),
                                 "-U", "netwright", "studies"], check=True, capture_output=True)
        yield f"postgresql://netwright@127.0.0.1:{port}/studies"
    finally:
        subprocess.run(prefix + [pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@needs_packages("postgresql")
def test_two_workers_share_one_postgresql_study(tmp_path, _runs_dir, postgres):
    import optuna

    from netwright.stages.tune import tune

    spec = study_spec(trials=4)
    tune(spec, name="pg", workers=2, storage=postgres, quiet=True)
    summary = check_study(_runs_dir / "pg", 4, workers=2)
    assert summary["storage"] == postgres and not (_runs_dir / "pg" / "study.db").exists()
    # a second machine joins the same study through the server: its trials continue the numbering
    tune(spec, name="pg", storage=postgres, trials=6, runs_dir=tmp_path / "machine2", quiet=True)
    study = optuna.load_study(study_name="pg", storage=postgres)
    numbers = sorted(t.number for t in study.trials if t.state.name in ("COMPLETE", "PRUNED"))
    first = [t["number"] for t in summary["trials"]]
    assert len(numbers) == 6 and set(first) < set(numbers) and min(set(numbers) - set(first)) > max(first)
    assert sorted(p.name for p in (tmp_path / "machine2" / "pg").glob("trial-*")) == [
        f"trial-{n:04d}" for n in sorted(set(numbers) - set(first))]


def test_two_workers_asking_at_once_train_the_requested_number_and_the_later_steps_back(tmp_path):
    """The race a shared study has: two workers each see the study one trial short and both ask.
    The storage numbers their trials in order; the later one is surplus, is never trained and is
    left out of the study's trials and counts."""
    import optuna

    from netwright.stages.tune import _is_surplus, _trials, SURPLUS

    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/race.db", study_name="race")
    for _ in range(2):
        study.tell(study.ask(), 0.5)
    a, b = study.ask(), study.ask()  # both asked before either checked
    assert not _is_surplus(a, 3) and _is_surplus(b, 3)
    b.set_user_attr(SURPLUS, True)
    study.tell(b, state=optuna.trial.TrialState.FAIL)
    assert [t.number for t in _trials(study)] == [0, 1, 2]
    study.tell(a, state=optuna.trial.TrialState.FAIL)  # if the earlier one then fails, a new one is not surplus
    assert not _is_surplus(study.ask(), 3)


def _finished(db: Path) -> int:
    import sqlite3

    if not db.is_file():
        return 0
    with sqlite3.connect(db, timeout=30) as c:
        try:
            return c.execute("select count(*) from trials where state in ('COMPLETE', 'PRUNED')").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def _running(db: Path) -> dict[int, int]:
    """Trial number -> worker pid of the trials in flight that have drawn their values."""
    import sqlite3

    with sqlite3.connect(db, timeout=30) as c:
        rows = c.execute("select t.number, a.value_json from trials t join trial_user_attributes a "
                         "on a.trial_id = t.trial_id where t.state = 'RUNNING' and a.key = 'worker' and exists "
                         "(select 1 from trial_params p where p.trial_id = t.trial_id)").fetchall()
    return {number: json.loads(value)["pid"] for number, value in rows}


def _wait(what, deadline: float):
    while time.time() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_a_killed_worker_loses_only_its_trial_and_resume_completes_the_study(tmp_path, _runs_dir):
    from netwright.stages.tune import tune

    spec = write_spec(tmp_path, study_spec(trials=6, epochs=100, pruner="none"))
    folder, db = _runs_dir / "k9", _runs_dir / "k9" / "study.db"
    proc = subprocess.Popen([sys.executable, "-m", "netwright", "tune", str(spec), "--workers", "2", "--name", "k9"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 120
        _wait(lambda: _finished(db) >= 1, deadline)
        number, pid = next(iter(_wait(lambda: _running(db), deadline).items()))
        os.kill(pid, signal.SIGKILL)  # one worker, mid-trial; the other goes on
        _wait(lambda: _finished(db) >= 3, deadline)
        os.killpg(proc.pid, signal.SIGKILL)  # then the whole study: parent and workers
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert f"worker pid {pid} ended by signal 9" in out and f"trial {number}: its worker (pid {pid}) is gone" in out
    assert not (folder / "study.json").exists()
    tune(folder, resume=True, quiet=True)
    summary = check_study(folder, 6)
    failed = [t for t in summary["trials"] if t["state"] == "FAIL"]
    assert number in [t["number"] for t in failed]
    retried = {t["retry_of"]: t for t in summary["trials"] if t["retry_of"] is not None}
    assert failed[[t["number"] for t in failed].index(number)]["params"]
    for t in failed:  # each lost trial's values were tried again; one lost before it drew any has none to try
        if t["params"]:
            assert t["number"] in retried, (t, retried)
            assert retried[t["number"]]["params"] == t["params"]
        else:
            assert t["number"] not in retried, (t, retried)
    r = netwright("tune", folder, "--resume")  # nothing left to do
    assert r.returncode == 0 and "6 of 6 trials finished" in r.stdout, r.stderr


def test_the_median_pruner_stops_lagging_trials_after_the_warmup(_runs_dir):
    from netwright.stages.tune import tune

    spec = study_spec(trials=6, epochs=12, sampler="random", warmup_epochs=2)
    spec["tune"]["params"] = {"train.optimizer.lr": {"type": "categorical", "choices": [0.05, 1e-6]}}
    summary = tune(spec, name="pruned", quiet=True)
    pruned = [t for t in summary["trials"] if t["state"] == "PRUNED"]
    assert pruned and all(t["params"]["train.optimizer.lr"] == 1e-6 for t in pruned)
    for t in pruned:
        train = json.loads((_runs_dir / "pruned" / t["run"] / "train.json").read_text())
        assert train["stopped_by"] == "tune" and 2 <= train["epochs"] < 12 and t["epochs"] == train["epochs"]
    assert summary["epochs_trained"] == sum(t["epochs"] for t in summary["trials"]) < 6 * 12


@pytest.mark.parametrize("change, fragments", [
    (lambda s: s["tune"]["params"].update({"train.optimizer.lrr": {"type": "float", "low": 0.1, "high": 1}}),
     ["tune.params.train.optimizer.lrr", "lrr"]),
    (lambda s: s["tune"]["params"].update({"model.hidden": {"type": "categorical", "choices": [[8], "wide"]}}),
     ["tune.params.model.hidden", "wide"]),
    (lambda s: s["tune"]["params"].update({"model.dropout": {"type": "float", "low": 0.5, "high": 0.1}}),
     ["tune.params.model.dropout", "below high"]),
    (lambda s: s["tune"]["params"].update({"model.dropout": {"type": "categorical"}}), ["choices"]),
    (lambda s: s["tune"].update({"sampler": "grid"}), ["grid sampler needs a step"]),
    (lambda s: s["data"].update({"val": 0.0}), ["tune.metric", "data.val"]),
    (lambda s: s.pop("tune"), ["no tune: section"]),
])
def test_spec_problems_are_one_line_before_any_trial(cli, tmp_path, _runs_dir, change, fragments):
    spec = study_spec()
    change(spec)
    r = cli("tune", write_spec(tmp_path, spec))
    assert_one_line_error(r, *fragments)
    assert not any(_runs_dir.glob("*/trial-*"))


def test_existing_studies_and_bad_storage_are_one_line(cli, tmp_path, _runs_dir):
    spec = write_spec(tmp_path, study_spec(trials=1, epochs=1))
    assert cli("tune", spec, "--quiet").code == 0
    assert_one_line_error(cli("tune", spec), "already exists", "--resume")
    changed = study_spec(trials=1, epochs=2)
    assert_one_line_error(cli("tune", write_spec(tmp_path, changed), "--resume"), "differs", "--resume")
    assert_one_line_error(cli("tune", tmp_path / "nowhere", "--resume"), "nowhere")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(cli("tune", tmp_path / "empty", "--resume"), "no tuning study")
    assert_one_line_error(cli("tune", spec, "--name", "x", "--storage", "nosuchdb://u@h/d"), "--storage")


def test_tracked_trials_are_child_runs_of_the_study_in_mlflow(_runs_dir):
    from mlflow import MlflowClient

    from netwright.stages.tune import tune

    spec = study_spec(trials=2, epochs=2, pruner="none")
    spec["train"]["log"] = ["mlflow"]
    summary = tune(spec, name="tracked", quiet=True)
    client = MlflowClient(tracking_uri=f"sqlite:///{_runs_dir / 'mlflow.db'}")
    parent = client.get_run(summary["mlflow_parent"])
    assert parent.info.run_name == "tracked" and parent.info.status == "FINISHED"
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == 2
    for child in children:  # each trial's own MLflow run holds its values
        trial = next(t for t in summary["trials"] if t["run"] == child.info.run_name)
        assert float(child.data.params["train.optimizer.lr"]) == pytest.approx(trial["params"]["train.optimizer.lr"])


def test_recover_retries_a_lost_trials_values_but_not_a_trial_lost_before_it_drew_any():
    """A dead worker's trial is failed; its values are queued again, at most MAX_RETRIES times; a trial
    lost between ask and its first suggestion has nothing to try again (a fresh trial replaces it)."""
    import optuna
    from optuna.trial import TrialState

    from netwright.stages.tune import MAX_RETRIES, recover

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    worker = {"host": socket.gethostname(), "pid": int(dead)}
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    drawn, blank = study.ask(), study.ask()
    drawn.suggest_float("x", 0, 1)
    for t in (drawn, blank):
        t.set_user_attr("worker", worker)
    lines: list[str] = []
    assert sorted(recover(study, lines.append)) == [drawn.number, blank.number]
    states = {t.number: t.state for t in study.get_trials()}
    assert states[drawn.number] == states[blank.number] == TrialState.FAIL
    queued = [t for t in study.get_trials() if t.state == TrialState.WAITING]
    assert [(t.system_attrs["fixed_params"], t.user_attrs["retry_of"]) for t in queued] == [(drawn.params, drawn.number)]
    assert any("before it drew values" in line for line in lines)
    for _ in range(MAX_RETRIES):  # each retry lost in turn: MAX_RETRIES tries in all, then no more
        retry = study.ask()
        retry.suggest_float("x", 0, 1)
        retry.set_user_attr("worker", worker)
        recover(study, lines.append)
    assert [t for t in study.get_trials() if t.state == TrialState.WAITING] == []
    assert "not retried (2 tries)" in lines[-1]


def test_the_scorer_takes_the_kept_epochs_value_in_the_metrics_direction():
    """``tune_score`` in isolation: the metric and direction a spec implies, a trial's value (the
    best epoch's under keep: best, else the last one's), and the refusal of a missing or
    non-finite value."""
    from netwright.errors import TrainingError
    from netwright.spec import load_spec
    from netwright.stages.tune_score import direction_of, metric_of, trial_value

    def spec(train=None, tune=None):
        return load_spec({"data": {"name": "iris"}, "model": {"name": "mlp"}, "train": train or {},
                          "tune": {"params": {"train.optimizer.lr": {"type": "log", "low": 1e-3, "high": 1e-1}},
                                   **(tune or {})}})

    assert (metric_of(spec()), direction_of(spec())) == ("val_loss", "minimize")
    assert (metric_of(spec({"monitor": "val_accuracy"})), direction_of(spec({"monitor": "val_accuracy"}))) == (
        "val_accuracy", "maximize")
    explicit = spec({"monitor": "val_accuracy"}, {"metric": "val_f1", "direction": "minimize"})
    assert (metric_of(explicit), direction_of(explicit)) == ("val_f1", "minimize")
    best, final = {"val_loss": 0.2, "val_accuracy": 0.9}, {"val_loss": 0.5, "val_accuracy": 0.8}
    assert trial_value({"kept": "best", "best": best, "final": final}, "val_loss") == 0.2
    assert trial_value({"kept": "last", "best": best, "final": final}, "val_accuracy") == 0.8
    assert trial_value({"kept": "best", "best": None, "final": final}, "val_loss") == 0.5
    for bad in (None, float("nan"), float("inf")):
        with pytest.raises(TrainingError, match="val_loss of the kept epoch is"):
            trial_value({"kept": "best", "best": {"val_loss": bad}, "final": final}, "val_loss")



def test_the_best_trial_without_weights_has_no_test_metrics(tmp_path):
    """A best trial whose run kept no weights (or has no folder) gets no ``test`` entry: None,
    not an error."""
    from netwright.stages.tune_score import test_metrics

    (tmp_path / "trial-0").mkdir()
    assert test_metrics(None) is None and test_metrics(tmp_path / "trial-0") is None


def test_a_small_table_tunes_on_cross_validation_folds(_runs_dir):
    """tune.folds: auto on iris (a validation split of about 25 rows): each trial trains 5 folds
    and scores the mean of their kept val_accuracy; the best trial's test metrics are its folds'
    ensemble on the shared test split. A larger validation split (digits) keeps one split; folds:
    1 is refused."""
    import statistics

    from netwright.spec import load_spec
    from netwright.stages.folds import evaluate_study
    from netwright.stages.tune import folds_of, tune

    spec = study_spec(trials=2, epochs=2, sampler="random")
    spec["tune"]["folds"] = "auto"
    assert folds_of(load_spec(spec)) == 5
    summary = tune(spec, name="small", quiet=True)
    done = [t for t in summary["trials"] if t["state"] == "COMPLETE"]
    assert len(done) == 2
    for t in done:
        folder = _runs_dir / "small" / t["run"]
        kept = []
        for i in range(1, 6):
            train = json.loads((folder / f"fold-{i}" / "train.json").read_text())
            kept.append(train["best" if train["kept"] == "best" else "final"]["val_accuracy"])
            assert load_spec(folder / f"fold-{i}" / "spec.yaml").data.fold == i
        assert t["value"] == pytest.approx(statistics.fmean(kept))
    best = summary["best"]
    ensemble = evaluate_study(_runs_dir / "small" / best["run"])["ensemble"]["metrics"]
    assert best["test"] == pytest.approx({k: v for k, v in ensemble.items() if isinstance(v, (int, float))})
    from netwright.report.compare import resolve

    entries = resolve([_runs_dir / "small"])[0]  # compare shows each trial's folds
    assert len(entries) == 10 and sum(x.best for x in entries) == 5
    digits = {**spec, "data": {"name": "digits", "val": 0.15}}
    assert folds_of(load_spec(digits)) is None
    assert folds_of(load_spec({**spec, "tune": {**spec["tune"], "folds": "off"}})) is None
    with pytest.raises(Exception, match="at least 2 folds"):
        load_spec({**spec, "tune": {**spec["tune"], "folds": 1}})
