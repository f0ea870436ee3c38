"""Every evaluation beside its trivial baseline, fitted on the train split: the numbers equal
scikit-learn's DummyClassifier (prior) and DummyRegressor (mean) on the same splits."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.datasets import load_diabetes
from sklearn.dummy import DummyClassifier, DummyRegressor

import netwright


def train(tmp_path, data: str, epochs: int = 5):
    return netwright.train({"data": {"name": data}, "model": {"name": "mlp", "hidden": [8]},
                            "train": {"epochs": epochs, "threads": 1, "optimizer": {"name": "adam", "lr": 0.02}}}, name=data, runs_dir=tmp_path / "runs",
                           progress="quiet")


@pytest.mark.parametrize("data", ["iris", "digits"])
def test_classifier_baseline_is_scikit_learns_dummy_classifier(tmp_path, data):
    run = train(tmp_path, data)
    result = netwright.evaluate(run, plots=False)
    d = run.load_data()
    dummy = DummyClassifier(strategy="prior").fit(d.train.x.numpy().reshape(len(d.train), -1), d.train.y.numpy())
    x, y = d.test.x.numpy().reshape(len(d.test), -1), d.test.y.numpy()
    base = result["baseline"]
    assert base["name"] == "majority class" and base["fitted_on"] == "train"
    m = base["metrics"]
    assert set(m) == set(result["metrics"])  # every metric of the model has its baseline
    assert m["accuracy"] == pytest.approx(dummy.score(x, y))
    assert m["f1"] == pytest.approx(skm.f1_score(y, dummy.predict(x), average="macro"))
    assert m["loss"] == pytest.approx(skm.log_loss(y, dummy.predict_proba(x), labels=dummy.classes_))
    # the prior's one confidence sits in one bin: ECE = |accuracy - majority share|
    assert m["ece"] == pytest.approx(abs(m["accuracy"] - dummy.predict_proba(x).max()))
    assert result["metrics"]["accuracy"] > m["accuracy"]  # five epochs beat always answering one class
    assert run.read_json("eval.json")["baseline"] == base


def test_regression_baseline_is_scikit_learns_dummy_regressor(tmp_path):
    run = train(tmp_path, "diabetes", epochs=20)
    result = netwright.evaluate(run, plots=False)
    d = run.load_data()
    t = run.info.preprocess["target"]
    y_train = d.train.y.double().numpy() * t["std"] + t["mean"]
    y_test = d.test.y.double().numpy() * t["std"] + t["mean"]
    # the unscaled targets are the data set's own (integer disease scores)
    assert np.isin(np.round(y_test, 3), load_diabetes().target).all()
    pred = DummyRegressor().fit(np.zeros((len(y_train), 1)), y_train).predict(np.zeros((len(y_test), 1)))
    m = result["baseline"]["metrics"]
    assert result["baseline"]["name"] == "train mean"
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y_test, pred))
    assert m["rmse"] == pytest.approx(skm.root_mean_squared_error(y_test, pred))
    assert m["r2"] == pytest.approx(skm.r2_score(y_test, pred))
    assert result["metrics"]["rmse"] < m["rmse"]


def test_the_baseline_is_in_the_cli_table_and_the_model_card(tmp_path, cli):
    run = train(tmp_path, "iris")
    r = cli("evaluate", run.path, "--no-plots")
    assert r.code == 0, r.err
    base = run.read_json("eval.json")["baseline"]["metrics"]
    header = next(line for line in r.out.splitlines() if "metric" in line)
    assert "baseline (majority class)" in header
    row = next(line for line in r.out.splitlines() if line.strip("│┃ ").startswith("accuracy"))
    assert f"{base['accuracy']:.4f}" in row
    netwright.report(run)
    html = run.file("report.html").read_text()
    assert "baseline: majority class" in html and "fitted on the train split" in html
