"""Split conformal prediction on the validation split: sets of classes, intervals of values.

Scores of the ``n`` validation examples give a threshold ``q``: the ``ceil((n + 1)(1 - alpha))``-th
smallest score (the ``ceil((n+1)(1-alpha))/n`` empirical quantile; infinite when that exceeds
``n``). For a new example from the same distribution the true answer then lies in the
prediction set with probability at least ``1 - alpha`` (marginal coverage, Vovk et al. 2005;
Angelopoulos & Bates 2021).

- classifiers: adaptive prediction sets (APS, Romano et al. 2020) in their non-randomised form
  that never gives an empty set: the score of class ``y`` is the probability mass of the classes
  more likely than ``y`` (the randomised APS score with ``U = 0``); the set is the classes whose
  score is at most ``q``: the most likely classes until their mass reaches ``q``, the class that
  crosses it included. The top class scores 0, so it is always in. When the top class alone is
  right more often than the target, the sets are single classes and coverage is the accuracy.
- regressors: absolute residuals ``|y - prediction|`` in the target's units; the interval is
  ``prediction +- q``.

Written with NumPy (no MAPIE). The scores use the model's own probabilities (``T = 1``), not
temperature-scaled ones: the temperature is fitted on the same validation split, and the
guarantee needs a score that does not depend on the calibration examples.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import NetwrightError


def check_coverage(coverage: float) -> float:
    if not isinstance(coverage, (int, float)) or not 0 < coverage < 1 or math.isnan(coverage):
        raise NetwrightError(f"--coverage {coverage}: give the share of answers to cover, between 0 and 1 "
                             "(e.g. --coverage 0.9)")
    return float(coverage)


def conformal_quantile(scores: np.ndarray, coverage: float) -> float:
    """The ``ceil((n + 1) * coverage)``-th smallest of ``n`` scores; ``inf`` when that is beyond ``n``."""
    s = np.sort(np.asarray(scores, np.float64).ravel())
    n = len(s)
    k = math.ceil((n + 1) * check_coverage(coverage) - 1e-9)  # (the tolerance keeps 0.9 * 100 from rounding up)
    return float("inf") if k > n else float(s[k - 1])


def _mass_before(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each example's classes, most likely first, and the mass of the classes more likely than each
    (tied classes share the mass before the first of them)."""
    order = np.argsort(-probs, axis=1, kind="stable")
    sorted_p = np.take_along_axis(probs, order, 1)
    before = sorted_p.cumsum(1) - sorted_p
    cols = np.arange(probs.shape[1])
    starts = np.ones(probs.shape, bool)
    starts[:, 1:] = sorted_p[:, 1:] != sorted_p[:, :-1]
    first = np.maximum.accumulate(np.where(starts, cols, 0), axis=1)  # where each run of ties starts
    return order, np.take_along_axis(before, first, 1)


def _scores(probs: np.ndarray) -> np.ndarray:
    """``(N, K)``: the APS score of every class of every example."""
    order, before = _mass_before(np.asarray(probs, np.float64))
    scores = np.empty(before.shape)
    np.put_along_axis(scores, order, before, 1)
    return scores


def aps_scores(probs: np.ndarray, target: np.ndarray) -> np.ndarray:
    """APS score of each example's true class: the mass of the classes more likely than it."""
    return _scores(probs)[np.arange(len(probs)), np.asarray(target, np.int64)]


def aps_sets(probs: np.ndarray, q: float) -> np.ndarray:
    """Boolean ``(N, K)``: class ``k`` is in example ``i``'s set (its score is at most ``q``)."""
    return _scores(probs) <= q


def classifier_sets(val_probs: np.ndarray, val_y: np.ndarray, coverage: float) -> dict[str, Any]:
    """Fit the APS threshold on calibration probabilities: ``{"q": ..., "n": ...}``."""
    return {"q": conformal_quantile(aps_scores(val_probs, val_y), coverage), "n": len(val_y)}


def regressor_intervals(val_pred: np.ndarray, val_y: np.ndarray, coverage: float) -> dict[str, Any]:
    """Fit the half-width of the intervals on calibration predictions (target units): ``{"q", "n"}``."""
    residuals = np.abs(np.asarray(val_y, np.float64) - np.asarray(val_pred, np.float64))
    return {"q": conformal_quantile(residuals, coverage), "n": len(residuals)}


def score_sets(keep: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Empirical coverage and mean set size of boolean sets against the true classes."""
    covered = keep[np.arange(len(keep)), np.asarray(target, np.int64)]
    return {"coverage": float(covered.mean()), "mean_set_size": float(keep.sum(1).mean())}


def score_intervals(pred: np.ndarray, q: float, target: np.ndarray) -> dict[str, float]:
    """Empirical coverage and mean width of ``pred +- q`` against the true values."""
    err = np.abs(np.asarray(target, np.float64) - np.asarray(pred, np.float64))
    return {"coverage": float((err <= q).mean()), "mean_width": 2 * q}
