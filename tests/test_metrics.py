"""Our metrics against scikit-learn's (an independent reference)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from netwright.metrics import (classification_metrics, confusion_matrix, expected_calibration_error,
                               lower_is_better, macro_f1, regression_metrics)


@pytest.mark.parametrize("seed", range(5))
def test_classification_metrics_match_sklearn(seed):
    g = torch.Generator().manual_seed(seed)
    k = 5
    logits = torch.randn(300, k, generator=g) * 2
    target = torch.randint(0, k, (300,), generator=g)
    if seed == 4:
        target[target == 3] = 0  # a class absent from the targets
    pred = logits.argmax(1)
    ours = classification_metrics(logits, target, k)
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(target, pred))
    labels = sorted(set(target.tolist()) | set(pred.tolist()))
    assert ours["f1"] == pytest.approx(skm.f1_score(target, pred, average="macro", labels=labels))
    assert ours["loss"] == pytest.approx(skm.log_loss(target, torch.softmax(logits.double(), 1), labels=range(k)), rel=1e-5)
    cm = confusion_matrix(pred, target, k)
    assert np.array_equal(cm.numpy(), skm.confusion_matrix(target, pred, labels=range(k)))
    assert macro_f1(cm) == pytest.approx(ours["f1"])


@pytest.mark.parametrize("seed", range(3))
def test_regression_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(10, 3, 200)
    p = y + rng.normal(0, 1, 200)
    ours = regression_metrics(torch.tensor(p), torch.tensor(y))
    assert ours["mae"] == pytest.approx(skm.mean_absolute_error(y, p))
    assert ours["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)))
    assert ours["r2"] == pytest.approx(skm.r2_score(y, p))


def test_expected_calibration_error_against_a_direct_computation():
    """Miscalibrated both ways (confident examples mostly wrong, unsure ones mostly right), so that
    merging or shifting bins changes the answer, plus confidences lying exactly on bin edges (0.5,
    0.7), which belong to the bin below: (lo, hi]."""
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(1000, 4, generator=g) * 3, dim=1).double()
    conf, pred = probs.max(1)
    right = torch.rand(1000, generator=g, dtype=torch.float64) < 1.2 - conf  # accuracy falls as confidence rises
    target = torch.where(right, pred, (pred + 1) % 4)
    edge = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.7, 0.1, 0.1, 0.1]], dtype=torch.float64).repeat(40, 1)
    probs, target = torch.cat([probs, edge]), torch.cat([target, torch.zeros(80, dtype=torch.long)])
    ece, table = expected_calibration_error(probs, target, bins=10)
    conf, pred = probs.max(1)
    conf, correct = conf.numpy(), (pred == target).numpy()
    expected = 0.0
    for lo in np.arange(10) / 10:
        mask = (conf > lo) & (conf <= lo + 0.1)
        if mask.any():
            expected += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    assert ece == pytest.approx(expected, abs=1e-9)
    assert abs(correct.mean() - conf.mean()) < 0.8 * ece  # one bin would hide part of the error
    assert [b["count"] for b in table] == [int(((conf > lo) & (conf <= lo + 0.1)).sum()) for lo in np.arange(10) / 10]
    assert [b["lo"] for b in table] == pytest.approx([i / 10 for i in range(10)])
    assert [b["hi"] for b in table] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert all(b["confidence"] is None if not b["count"] else b["confidence"] > b["lo"] for b in table)
    # a perfectly calibrated one-hot prediction has zero ECE
    onehot = torch.nn.functional.one_hot(target, 4).double()
    assert expected_calibration_error(onehot, target)[0] == pytest.approx(0.0)


def test_macro_f1_leaves_out_classes_seen_nowhere_and_r2_of_a_constant_target():
    target, pred = torch.tensor([0, 0, 1, 1, 2]), torch.tensor([0, 1, 1, 1, 2])  # class 3 never occurs
    cm = confusion_matrix(pred, target, 4)
    assert macro_f1(cm) == pytest.approx(skm.f1_score(target, pred, average="macro", labels=[0, 1, 2]))
    y, p = torch.full((20,), 3.0), torch.linspace(2, 4, 20)
    assert regression_metrics(p, y)["r2"] == skm.r2_score(y.numpy(), p.numpy()) == 0.0  # sklearn's finite choice


def test_direction_of_metrics():
    assert lower_is_better("val_loss") and lower_is_better("val_mae") and lower_is_better("train_loss")
    assert not lower_is_better("val_accuracy") and not lower_is_better("val_r2") and not lower_is_better("val_f1")


def test_r2_of_targets_with_a_small_spread_is_scikit_learns():
    """Targets whose squared deviations sum to less than 1 (a narrow range): R² is still
    1 - SS_res / SS_tot, as scikit-learn computes it; only a constant target gets 0."""
    from netwright.metrics import regression_metrics

    rng = np.random.default_rng(4)
    target = rng.normal(0, 0.05, 40)
    pred = target + rng.normal(0, 0.02, 40)
    assert ((target - target.mean()) ** 2).sum() < 1
    r2 = regression_metrics(torch.from_numpy(pred), torch.from_numpy(target))["r2"]
    assert r2 == pytest.approx(skm.r2_score(target, pred), abs=1e-12) and 0.5 < r2 < 1
    assert regression_metrics(torch.ones(5), torch.full((5,), 2.0))["r2"] == 0.0


def test_macro_f1_counts_a_class_seen_once_and_is_zero_with_no_examples():
    """A class that occurs once in the targets and is never predicted has F1 0 and is in the
    mean (scikit-learn's macro F1 over the classes seen); so is a class predicted once and never
    true. A confusion matrix of no examples scores 0."""
    target = torch.tensor([0, 0, 0, 1, 1, 1, 2, 0])
    pred = torch.tensor([0, 0, 1, 1, 1, 0, 0, 3])  # class 2: once true, never predicted; class 3: once predicted
    cm = confusion_matrix(pred, target, 5)
    expected = skm.f1_score(target, pred, average="macro", labels=[0, 1, 2, 3], zero_division=0)
    assert macro_f1(cm) == pytest.approx(expected) and expected < skm.f1_score(target, pred, average="macro",
                                                                               labels=[0, 1], zero_division=0)
    assert macro_f1(torch.zeros(3, 3, dtype=torch.long)) == 0.0


def test_test_split_metrics_have_the_direction_of_their_name():
    assert lower_is_better("test_loss") and lower_is_better("test_rmse") and not lower_is_better("test_accuracy")


def test_frechet_distance_of_rank_deficient_features_is_the_eigenvalue_formula():
    """Two samples of six ReLU features: the covariances have rank 1 and ``sqrtm(C_a C_b)`` has
    no finite value, so the distance takes the nudged diagonals; it must still be
    ``|mu_a - mu_b|^2 + Tr C_a + Tr C_b - 2 sum sqrt(eig(C_a C_b))`` (the eigenvalues of a product of
    two covariances are real and at least 0), to the nudge's size."""
    import warnings

    from scipy import linalg

    from netwright.metrics import frechet_distance

    rng = np.random.default_rng(1)
    a, b = np.maximum(rng.normal(size=(2, 6)), 0), np.maximum(rng.normal(size=(2, 6)), 0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert not np.isfinite(linalg.sqrtm(ca @ cb)).all()  # the case the fallback is for
    eig = np.clip(np.linalg.eigvals(ca @ cb).real, 0, None)
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * np.sqrt(eig).sum()
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-4)
