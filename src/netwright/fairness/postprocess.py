"""Post-processing: group-specific (randomised) thresholds found by Fairlearn's
ThresholdOptimizer, stored as JSON and applied to new scores."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import NetwrightError


def _scores_estimator(scores: np.ndarray) -> Any:
    """A fitted scikit-learn estimator that looks up precomputed positive-class probabilities by
    row index, so that ThresholdOptimizer works for any model and input shape."""
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Scores(ClassifierMixin, BaseEstimator):
        def __init__(self, scores: np.ndarray | None = None):
            self.scores = scores

        def fit(self, X: Any, y: Any = None) -> "Scores":  # noqa: N803 (scikit-learn's argument name)
            self.classes_ = np.array([0, 1])
            return self

        def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
            p = np.asarray(self.scores, dtype=np.float64)[np.asarray(X)[:, 0].astype(int)]
            return np.stack([1 - p, p], axis=1)

        def predict(self, X: Any) -> np.ndarray:  # noqa: N803
            return (self.predict_proba(X)[:, 1] > 0.5).astype(int)

    return Scores(scores).fit(None)

def fit_thresholds(score: np.ndarray, positive: np.ndarray, groups: np.ndarray, constraint: str) -> dict[str, Any]:
    """Group thresholds that satisfy ``constraint`` with the best accuracy on these examples."""
    from fairlearn.postprocessing import ThresholdOptimizer

    opt = ThresholdOptimizer(estimator=_scores_estimator(score), constraints=constraint, prefit=True,
                             predict_method="predict_proba")
    opt.fit(np.arange(len(score))[:, None], np.asarray(positive, int), sensitive_features=np.asarray(groups))
    table = {}
    for group, b in opt.interpolated_thresholder_.interpolation_dict.items():
        table[str(group)] = {
            "p0": float(b.p0), "operation0": [b.operation0.operator, float(b.operation0.threshold)],
            "p1": float(b.p1), "operation1": [b.operation1.operator, float(b.operation1.threshold)],
            "p_ignore": float(b.get("p_ignore", 0.0)), "prediction_constant": float(b.get("prediction_constant", 0.0)),
        }
    return {"constraint": constraint, "groups": table}


def _op(op: list, score: np.ndarray) -> np.ndarray:
    operator, threshold = op
    return score > threshold if operator == ">" else score < threshold


def apply_thresholds(score: np.ndarray, groups: np.ndarray, thresholds: dict[str, Any], seed: int = 0) -> np.ndarray:
    """Randomised positive decisions per group, as the thresholds prescribe."""
    rng = np.random.default_rng(seed)
    groups = np.asarray(groups).astype(str)
    unknown = sorted(set(groups) - set(thresholds["groups"]))
    if unknown:
        raise NetwrightError(f"no thresholds for group(s) {', '.join(unknown)}; they were fitted for "
                             f"{', '.join(thresholds['groups'])}")
    out = np.zeros(len(score), dtype=bool)
    for g, t in thresholds["groups"].items():
        m = groups == g
        if not m.any():
            continue
        s = score[m]
        pred = np.where(rng.random(m.sum()) < t["p0"], _op(t["operation0"], s), _op(t["operation1"], s))
        if t["p_ignore"]:
            pred = np.where(rng.random(m.sum()) < t["p_ignore"], bool(t["prediction_constant"]), pred)
        out[m] = pred
    return out
