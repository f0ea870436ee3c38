"""Post-processing: group-specific (randomised) thresholds found by Fairlearn's
ThresholdOptimizer, stored as JSON and applied to new scores."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import NetwrightError
from ..run import THRESHOLDS


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
        if t["p_ignore"]:  # Fairlearn's prediction_constant is the probability of a positive decision there
            ignore = rng.random(m.sum()) < t["p_ignore"]
            pred = np.where(ignore, rng.random(m.sum()) < t["prediction_constant"], pred)
        out[m] = pred
    return out


def deployed_decisions(run: Any, table: Any, logits: np.ndarray, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A run trained with ``fairness.mitigation: thresholds`` decides by its group thresholds
    when the input carries the sensitive columns (each row says which group's thresholds it got),
    and says in every row that they were not applied when it does not."""
    if run.spec.fairness.mitigation != "thresholds" or not run.has(THRESHOLDS):
        return rows
    from .groups import group_labels

    t = run.read_json(THRESHOLDS)
    names = run.info.class_names
    positive = names.index(t["positive_label"])
    missing = [c for c in t["sensitive"] if not isinstance(table, dict) or c not in table]
    if missing:
        for r in rows:
            r["thresholds"] = (f"not applied: the input has no {', '.join(missing)} column, so this is the model's "
                               "own decision; add the column to get the fairness thresholds' decision")
        return rows
    groups = group_labels({c: np.array([str(v).strip() for v in table[c]]) for c in t["sensitive"]}, t["sensitive"])
    from ..calibration import probabilities

    p = probabilities(logits)  # the uncalibrated scores the thresholds were fitted on
    decide = apply_thresholds(p[:, positive], groups, t, seed=run.spec.seed)
    others = p.copy()
    others[:, positive] = -1.0
    for r, d, g, alt in zip(rows, decide, groups, others.argmax(1)):
        k = positive if d else (int(alt) if r["class"] == positive else r["class"])
        r["model_label"], r["label"], r["class"] = r["label"], names[k], k
        r["thresholds"] = f"applied: the {t['constraint'].replace('_', ' ')} thresholds of {g}"
    return rows


def save_thresholds(run: Any, data: Any, model: Any) -> dict[str, Any]:
    """Fit post-processing thresholds on the validation split; write ``fairness/thresholds.json``."""
    from .audit import decisions
    from .groups import group_labels, resolve

    fair = run.spec.fairness
    sensitive, positive = resolve(data.info, fair)
    split, name = (data.val, "val") if data.val is not None else (data.train, "train")
    score, _ = decisions(model, split.x, positive)
    table = fit_thresholds(score, split.y.numpy() == positive, group_labels(split.groups, sensitive), fair.thresholds)
    table.update(fitted_on=f"{name} split", sensitive=sensitive, positive_label=data.info.class_names[positive])
    run.write_json(THRESHOLDS, table)
    return table
