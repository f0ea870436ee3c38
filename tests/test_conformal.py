"""Split conformal prediction: coverage on planted scores (numpy only, no training), the quantile's
definition, and the sets and intervals through evaluate and predict on tiny runs."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest

import netwright
from netwright import NetwrightError
from netwright.data.roles import role_rows
from netwright.conformal import (aps_scores, aps_sets, classifier_sets, conformal_quantile, regressor_intervals,
                                 score_intervals, score_sets)
from conftest import assert_one_line_error, tiny_spec

SPLITS, N_CAL, N_TEST = 400, 1000, 2000
MARGIN = 0.003  # the one-sided margin of the mean coverage over SPLITS splits (power: the test's docstring)


def own_rank(n: int, coverage: float) -> int:
    """``ceil((n + 1) * coverage)`` in exact rational arithmetic (the coverage as written in decimal)."""
    f = Fraction(str(coverage)) * (n + 1)
    return -(-f.numerator // f.denominator)


def own_quantile(scores: np.ndarray, coverage: float) -> float:
    """The conformal quantile from its definition: the ``ceil((n + 1) * coverage)``-th smallest score."""
    k = own_rank(len(scores), coverage)
    return math.inf if k > len(scores) else float(np.sort(scores)[k - 1])


def own_aps(probs: np.ndarray) -> np.ndarray:
    """``(N, K)``: by brute force, the probability mass of the classes strictly more likely than each class."""
    return (probs[:, None, :] * (probs[:, None, :] > probs[:, :, None])).sum(2)


def own_softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def planted_classes(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Exchangeable examples: the model's probabilities, and classes drawn from a sharper truth (the
    model is miscalibrated on purpose; coverage must hold anyway). The model's top class is right
    about 69% of the time, 7 standard deviations below the smallest rank (801 of 1000), so the APS
    score's atom at 0 never holds the quantile: the scores there are continuous."""
    n, k = N_CAL + N_TEST, 6
    probs = rng.dirichlet(np.full(k, 0.5), size=n)
    truth = probs ** 2 / (probs ** 2).sum(1, keepdims=True)
    y = (rng.random((n, 1)) > truth.cumsum(1)).sum(1).clip(max=k - 1)
    return probs, y


def planted_values(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Exchangeable examples: a biased model's predictions and values with heavy-tailed, uneven noise."""
    x = rng.uniform(-2, 2, N_CAL + N_TEST)
    y = np.sin(x) + rng.standard_t(3, len(x)) * (0.2 + 0.3 * np.abs(x))
    return np.sin(x) + 0.1, y


@pytest.mark.parametrize("kind", ["sets", "intervals"])
def test_split_conformal_covers_its_target_over_planted_splits(kind):
    """Over SPLITS = 400 planted calibration/test splits (n = 1000 calibration, m = 2000 test
    examples each) at coverage 0.8, 0.9 and 0.95, the mean empirical coverage is at least
    ``target - 0.003`` and at most ``target + 1/(n+1) + 0.003``.

    Split conformal with continuous scores: the threshold is the k-th smallest of n scores,
    k = ceil((n+1) target), so the coverage of one split, F(q), is Beta(k, n+1-k): mean
    mu = k/(n+1) (0.80020 / 0.90010 / 0.95005, between the target and target + 1/(n+1)), variance
    mu(1-mu)/(n+2). A split's empirical coverage adds binomial noise of variance
    E[F(1-F)]/m = (mu(1-mu) - Var F)/m. Per split the standard deviation is then 0.01547 / 0.01160 /
    0.00843, and over 400 splits the mean's is sd = 0.00077 / 0.00058 / 0.00042 (the mean is normal
    to a good approximation).
    - false alarm (the correct method fails the lower bound): P(Z > (mu - target + 0.003)/sd)
      = 1.8e-5 / 4.6e-8 / 2e-13; the upper bound: P(Z > (target + 1/(n+1) + 0.003 - mu)/sd)
      = 4.5e-7 / 9e-12 / 4e-21;
    - thresholds fitted for ``target - 0.006`` (k = 795 / 895 / 945: mean 0.79421 / 0.89411 /
      0.94406) pass with probability 1.5e-4 / 3e-7 / 1e-12 (observed: they fail at every coverage);
    - a method covering 1 point under (or over) its target is caught with power
      P(Z < (0.01 - 1/(n+1) - 0.003)/sd) > 1 - 1e-14 at each coverage (7.8 sd at 0.8); the power is already 0.9
      at 0.4 points under (0.004 = 0.003 + 1.3 sd at 0.8, the widest).
    The spread across splits is also checked: the sample standard deviation is within 20% of the
    Beta-plus-binomial one (its own relative standard error is 1/sqrt(2 x 399) = 3.5%, so 5.7 of them):
    a threshold fitted on fewer calibration scores, or not an order statistic, spreads further.
    """
    rng = np.random.default_rng(2024 if kind == "sets" else 2025)
    coverages = (0.8, 0.9, 0.95)
    got: dict[float, list[float]] = {c: [] for c in coverages}
    for _ in range(SPLITS):
        if kind == "sets":
            probs, y = planted_classes(rng)
            for c in coverages:
                fit = classifier_sets(probs[:N_CAL], y[:N_CAL], c)
                got[c].append(score_sets(aps_sets(probs[N_CAL:], fit["q"]), y[N_CAL:])["coverage"])
        else:
            pred, y = planted_values(rng)
            for c in coverages:
                fit = regressor_intervals(pred[:N_CAL], y[:N_CAL], c)
                got[c].append(score_intervals(pred[N_CAL:], fit["q"], y[N_CAL:])["coverage"])
    for c in coverages:
        k = own_rank(N_CAL, c)
        mu, var_f = k / (N_CAL + 1), k * (N_CAL + 1 - k) / ((N_CAL + 1) ** 2 * (N_CAL + 2))
        sd_split = math.sqrt(var_f + (mu * (1 - mu) - var_f) / N_TEST)
        mean, sd = float(np.mean(got[c])), float(np.std(got[c], ddof=1))
        assert mean >= c - MARGIN, (kind, c, mean)
        assert mean <= c + 1 / (N_CAL + 1) + MARGIN, (kind, c, mean)
        assert abs(sd / sd_split - 1) < 0.2, (kind, c, sd, sd_split)


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


def test_predicted_sets_use_the_models_own_probabilities_under_a_temperature():
    """``predict`` on a calibrated run (``class_rows`` with T = 3, far from 1): the probabilities are
    softmax(logits / 3), the sets are APS on softmax(logits) at the threshold fitted on them, both
    computed here from the planted logits with numpy."""
    from netwright.tasks.classification import class_rows

    rng = np.random.default_rng(7)
    names = ["a", "b", "c", "d", "e"]
    logits = rng.normal(0, 2, (1400, 5))
    y = (logits + rng.gumbel(size=logits.shape)).argmax(1)  # drawn from softmax(logits): calibrated at T = 1
    val, test = slice(0, 1000), slice(1000, None)
    q = own_quantile(own_aps(own_softmax(logits[val]))[np.arange(1000), y[val]], 0.9)
    assert q > 0.3  # the top class alone is right far less often than 90%: the sets hold several classes
    rows = class_rows(names, logits[test], 3.0, {"q": q})
    assert np.array([list(r["probabilities"].values()) for r in rows]) == pytest.approx(
        own_softmax(logits[test] / 3), abs=1e-6)
    own = own_aps(own_softmax(logits[test])) <= q + 1e-12
    assert [r["set"] for r in rows] == [[n for n, k in zip(names, keep) if k] for keep in own]
    scaled = own_aps(own_softmax(logits[test] / 3)) <= q
    assert (scaled != own).any(1).sum() > 50  # the temperature would change many sets: the check has power


def test_coverage_through_evaluate_and_predict(cli, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({**tiny_spec(epochs=10, optimizer={"name": "adam", "lr": 0.02}),
                                "data": {"name": "iris", "val": 0.3}}))  # 15 conformal rows: enough for 0.9
    assert cli("train", spec, "--name", "iris").code == 0
    r = cli("evaluate", "iris", "--coverage", "0.9", "--no-plots")
    assert r.code == 0, r.err
    c = json.loads((tmp_path / "runs" / "iris" / "eval.json").read_text())["conformal"]
    assert c["coverage_target"] == 0.9 and c["calibrated_on"] == "val"
    assert f"coverage {c['coverage']:.4f} for a target of 0.9" in r.out
    run = netwright.Run.open("iris")
    d = run.load_data()
    rows = role_rows(len(d.val), {"select": 1 / 3, "temperature": 1 / 3, "conformal": 1 / 3})["conformal"]
    assert c["n"] == len(rows) == 15 and c["rows"] == "conformal"
    import torch

    model = run.load_model()
    with torch.no_grad():
        val_probs = own_softmax(model(d.val.x[rows]).double().numpy())
    q = own_quantile(own_aps(val_probs)[np.arange(len(rows)), d.val.y[rows].numpy()], 0.9)
    assert c["q"] == pytest.approx(q, abs=1e-9)  # the threshold from its definition, on the conformal rows
    from sklearn.datasets import load_iris

    iris = load_iris()
    (tmp_path / "in.csv").write_text(",".join(iris.feature_names) + "\n"
                                     + "\n".join(",".join(map(str, row)) for row in iris.data[::10]) + "\n")
    r = cli("predict", "iris", tmp_path / "in.csv", "--coverage", "0.9")
    assert r.code == 0, r.err
    rows = json.loads(r.out)
    from netwright.data.inputs import encode_inputs

    with torch.no_grad():
        probs = own_softmax(model(torch.from_numpy(encode_inputs(run.info, iris.data[::10]))).double().numpy())
    own = own_aps(probs) <= q + 1e-12
    assert [row["set"] for row in rows] == [[n for n, k in zip(iris.target_names, keep) if k] for keep in own]
    # evaluate's coverage and mean set size, recomputed from the model's test probabilities
    with torch.no_grad():
        probs = own_softmax(model(d.test.x).double().numpy())
    keep = own_aps(probs) <= q + 1e-12
    assert keep[np.arange(len(keep)), d.test.y.numpy()].mean() == pytest.approx(c["coverage"], abs=1e-12)
    assert keep.sum(1).mean() == pytest.approx(c["mean_set_size"], abs=1e-12)
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

    raw = load_diabetes(scaled=False)
    d, info = run.load_data(), run.info
    split = {}
    for name in ("val", "test"):  # each split's raw inputs and targets, predicted through predict
        x, y = info.raw(d.split(name).x), info.unscale(d.split(name).y.double().numpy())
        assert np.abs(y[:, None] - raw.target[None, :]).min(1).max() < 1e-3  # the dataset's own disease scores
        split[name] = np.array([r["prediction"] for r in netwright.predict(run, x)]), y
    pred, y = split["val"]
    rows = role_rows(len(y), {"select": 0.5, "conformal": 0.5})["conformal"]  # a regressor has no temperature
    assert c["n"] == len(rows) and c["q"] == pytest.approx(own_quantile(np.abs(y - pred)[rows], 0.8), rel=1e-4)
    pred, y = split["test"]
    assert c["coverage"] == pytest.approx(np.mean(np.abs(y - pred) <= c["q"]))
    rows = netwright.predict(run, raw.data[:5], coverage=0.8)
    for row in rows:
        lo, hi = row["interval"]
        assert (lo + hi) / 2 == pytest.approx(row["prediction"]) and hi - lo == pytest.approx(2 * c["q"])


def test_an_interval_covers_a_value_on_its_edge():
    """``pred +- q`` is closed: a true value exactly ``q`` away is covered (the split-conformal
    guarantee counts residuals <= q)."""
    c = score_intervals(np.array([0.0, 0.0, 0.0, 0.0]), 0.5, np.array([0.5, -0.5, 0.25, 0.75]))
    assert c == {"coverage": 0.75, "mean_width": 1.0}


def test_too_few_conformal_rows_is_a_refusal_that_names_the_rows_it_needs(tmp_path):
    """iris with the default data.val: 23 validation rows, 8 of them conformal (a third). At 0.9
    and 0.95 the ``ceil((n + 1) coverage)``-th smallest of 8 scores does not exist: refused in one
    line naming the smallest n for which it does (counted here with the rank's own definition)
    and the smallest validation split that gives that many conformal rows (found here by trying
    every size with ``role_rows``). A coverage the rows allow is fitted and named."""
    import re

    run = netwright.train(tiny_spec(epochs=1), name="few", runs_dir=tmp_path, progress="quiet")
    thirds = {"select": 1 / 3, "temperature": 1 / 3, "conformal": 1 / 3}
    n = len(role_rows(run.info.splits["val"], thirds)["conformal"])
    for coverage in (0.9, 0.95):
        need = next(m for m in range(1, 1000) if own_rank(m, coverage) <= m)
        smallest = next(v for v in range(1, 10_000) if len(role_rows(v, thirds)["conformal"]) >= need)
        assert n < need and need == {0.9: 9, 0.95: 19}[coverage]
        with pytest.raises(NetwrightError) as e:
            netwright.evaluate(run, plots=False, coverage=coverage)
        got = re.fullmatch(
            re.escape(f"--coverage {coverage} needs at least {need} conformal rows, {run.path} has {n} (33% of its "
                      "validation split); lower --coverage or train with a larger data.val (at least ")
            + r"(\d+) validation rows\)", str(e.value))
        assert got, str(e.value)
        named = int(got.group(1))
        assert named == smallest == {0.9: 26, 0.95: 56}[coverage]
    c = netwright.evaluate(run, plots=False, coverage=0.75)["conformal"]  # ceil(9 x 0.75) = 7 <= 8
    assert c["n"] == n and c["method"].startswith("split conformal, adaptive prediction sets (APS)")
