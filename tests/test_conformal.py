"""Split conformal prediction: coverage on planted scores (numpy only, no training), the quantile's
definition, and the sets and intervals through evaluate and predict on tiny runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import netwright
from netwright import NetwrightError
from netwright.conformal import (aps_scores, aps_sets, classifier_sets, conformal_quantile, regressor_intervals,
                                 score_intervals, score_sets)
from conftest import assert_one_line_error, tiny_spec

SPLITS = 50
N_CAL = N_TEST = 1000


@pytest.mark.parametrize("coverage", [0.8, 0.9, 0.95])
def test_classifier_sets_cover_as_promised_over_random_splits(coverage):
    rng = np.random.default_rng(int(coverage * 100))
    got, sizes = [], []
    for _ in range(SPLITS):
        n, k = N_CAL + N_TEST, 10
        probs = rng.dirichlet(np.full(k, 0.5), size=n)  # the model's probabilities
        # the truth follows a sharper version of them: the model is miscalibrated, coverage must still hold
        truth = probs ** 2 / (probs ** 2).sum(1, keepdims=True)
        y = (rng.random((n, 1)) > truth.cumsum(1)).sum(1).clip(max=k - 1)
        fit = classifier_sets(probs[:N_CAL], y[:N_CAL], coverage)
        s = score_sets(aps_sets(probs[N_CAL:], fit["q"]), y[N_CAL:])
        got.append(s["coverage"])
        sizes.append(s["mean_set_size"])
    assert abs(np.mean(got) - coverage) < 0.01, np.mean(got)
    assert 1 <= np.mean(sizes) < 10


@pytest.mark.parametrize("coverage", [0.8, 0.9, 0.95])
def test_regressor_intervals_cover_as_promised_over_random_splits(coverage):
    rng = np.random.default_rng(int(coverage * 1000))
    got = []
    for _ in range(SPLITS):
        x = rng.uniform(-2, 2, N_CAL + N_TEST)
        y = np.sin(x) + rng.standard_t(3, len(x)) * (0.2 + 0.3 * np.abs(x))  # heavy tails, uneven noise
        pred = np.sin(x) + 0.1  # a biased model
        fit = regressor_intervals(pred[:N_CAL], y[:N_CAL], coverage)
        got.append(score_intervals(pred[N_CAL:], fit["q"], y[N_CAL:])["coverage"])
    assert abs(np.mean(got) - coverage) < 0.01, np.mean(got)


def test_the_quantile_is_the_ceil_n_plus_1_rank():
    scores = np.arange(1, 101, dtype=float)[::-1]  # 100 scores, unsorted
    assert conformal_quantile(scores, 0.9) == 91  # ceil(101 * 0.9) = 91st smallest
    assert conformal_quantile(scores, 0.5) == 51  # ceil(50.5)
    assert conformal_quantile(np.arange(1.0, 10.0), 0.9) == 9  # ceil(10 * 0.9) = 9, exactly
    assert math.isinf(conformal_quantile(np.arange(1.0, 10.0), 0.95))  # ceil(9.5) = 10 > 9 scores
    with pytest.raises(NetwrightError, match="between 0 and 1"):
        conformal_quantile(scores, 1.0)


def test_aps_sets_are_the_most_likely_classes_until_their_mass_reaches_the_threshold():
    p = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.4, 0.4, 0.2]])
    assert aps_scores(p, np.array([1, 2, 1])).tolist() == pytest.approx([0.5, 0.0, 0.0])  # ties share a score
    assert aps_scores(p, np.array([2, 0, 2])).tolist() == pytest.approx([0.8, 0.8, 0.8])
    assert aps_sets(p, 0.0).tolist() == [[True, False, False], [False, False, True], [True, True, False]]
    assert aps_sets(p, 0.6).tolist() == [[True, True, False], [False, False, True], [True, True, False]]
    assert aps_sets(p, 0.8).tolist() == [[True, True, True]] * 3
    # brute force: a class is in the set when the classes more likely than it hold at most q
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(6), size=200)
    for q in (0.0, 0.3, 0.7, 0.95):
        more = (probs[:, None, :] * (probs[:, None, :] > probs[:, :, None])).sum(2)
        assert (aps_sets(probs, q) == (more <= q + 1e-12)).all()


def test_coverage_through_evaluate_and_predict(cli, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(tiny_spec(epochs=10, optimizer={"name": "adam", "lr": 0.02})))
    assert cli("train", spec, "--name", "iris").code == 0
    r = cli("evaluate", "iris", "--coverage", "0.9", "--no-plots")
    assert r.code == 0, r.err
    c = json.loads((tmp_path / "runs" / "iris" / "eval.json").read_text())["conformal"]
    assert c["coverage_target"] == 0.9 and c["calibrated_on"] == "val" and 0 <= c["coverage"] <= 1
    assert 1 <= c["mean_set_size"] <= 3 and f"coverage {c['coverage']:.4f} for a target of 0.9" in r.out
    run = netwright.Run.open("iris")
    d = run.load_data()
    assert c["n"] == len(d.val) == run.info.splits["val"]
    from sklearn.datasets import load_iris

    iris = load_iris()
    (tmp_path / "in.csv").write_text(",".join(iris.feature_names) + "\n"
                                     + "\n".join(",".join(map(str, row)) for row in iris.data[::10]) + "\n")
    r = cli("predict", "iris", tmp_path / "in.csv", "--coverage", "0.9")
    assert r.code == 0, r.err
    rows = json.loads(r.out)
    assert all(row["label"] in row["set"] and set(row["set"]) <= set(iris.target_names) for row in rows)
    # evaluate's coverage, recomputed from the model's test probabilities and the stored threshold
    import torch

    with torch.no_grad():
        probs = torch.softmax(run.load_model()(d.test.x).double(), 1).numpy()
    keep = aps_sets(probs, c["q"])
    assert keep[np.arange(len(keep)), d.test.y.numpy()].mean() == pytest.approx(c["coverage"])
    r = cli("predict", "iris", tmp_path / "in.csv", "--coverage", "0.9", "--format", "csv")
    assert r.code == 0 and ",set," in r.out.splitlines()[0]
    for bad in ("1.5", "0", "1"):
        assert_one_line_error(cli("evaluate", "iris", "--coverage", bad), f"--coverage {float(bad)}", "between 0 and 1")
        assert_one_line_error(cli("predict", "iris", tmp_path / "in.csv", "--coverage", bad), "between 0 and 1")


def test_regression_intervals_in_target_units(tmp_path):
    run = netwright.train({"data": {"name": "diabetes"}, "model": {"name": "mlp", "hidden": [16]},
                           "train": {"epochs": 20, "threads": 1, "optimizer": {"name": "adam", "lr": 0.01}}},
                          name="reg", runs_dir=tmp_path / "runs", progress="quiet")
    c = netwright.evaluate(run, plots=False, coverage=0.8)["conformal"]
    assert c["mean_width"] == pytest.approx(2 * c["q"]) and 20 < c["q"] < 200  # disease-score units, not z-scores
    from sklearn.datasets import load_diabetes

    rows = netwright.predict(run, load_diabetes(scaled=False).data[:5], coverage=0.8)
    for row in rows:
        lo, hi = row["interval"]
        assert lo < row["prediction"] < hi and hi - lo == pytest.approx(2 * c["q"])
