"""The ``audit`` stage: how the model treats each group, and the gaps between groups.

Per group (and per intersection of groups): count, accuracy, selection rate, true and false
positive rates, calibration. Gaps: demographic parity difference and ratio, equalized odds
difference, equal opportunity difference, each with a bootstrap confidence interval.
Fairlearn's ``MetricFrame`` computes the group table; the bootstrap recomputes the same
rates with numpy on resampled indices.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import NetwrightError
from ..metrics import expected_calibration_error
from ..run import Run, writes_run
from .groups import group_index, group_labels, resolve

CI_LEVEL = 0.95


def _rates(codes: np.ndarray, k: int, t: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Selection rate, TPR, FPR and accuracy per group (``w``: bootstrap multiplicities)."""
    w = np.ones(len(codes)) if w is None else w
    n = np.bincount(codes, w, k)
    pos = np.bincount(codes, w * t, k)
    neg = n - pos
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "selection_rate": np.bincount(codes, w * p, k) / n,
            "true_positive_rate": np.bincount(codes, w * (t & p), k) / pos,
            "false_positive_rate": np.bincount(codes, w * (~t & p), k) / neg,
            "accuracy": np.bincount(codes, w * (t == p), k) / n,
        }


def _gaps(r: dict[str, np.ndarray]) -> dict[str, float]:
    sel, tpr, fpr = r["selection_rate"], r["true_positive_rate"], r["false_positive_rate"]
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "demographic_parity_difference": float(np.nanmax(sel) - np.nanmin(sel)),
            "demographic_parity_ratio": float(np.nanmin(sel) / np.nanmax(sel)) if np.nanmax(sel) > 0 else float("nan"),
            "equalized_odds_difference": float(max(np.nanmax(tpr) - np.nanmin(tpr), np.nanmax(fpr) - np.nanmin(fpr))),
            "equal_opportunity_difference": float(np.nanmax(tpr) - np.nanmin(tpr)),
        }


def audit_predictions(y_true: np.ndarray, y_pred: np.ndarray, score: np.ndarray, groups: dict[str, np.ndarray],
                      sensitive: list[str], min_group_size: int = 30, bootstrap: int = 1000,
                      seed: int = 0, labels: tuple[str, str] = ("positive", "negative")) -> dict[str, Any]:
    """Audit binary decisions (``y_true``/``y_pred`` booleans: the positive outcome) by group.

    Returns per-group tables for each sensitive column and for their intersection, gaps with
    bootstrap confidence intervals, and warnings for groups too small to judge.
    """
    import pandas as pd
    from fairlearn.metrics import MetricFrame, count, false_positive_rate, selection_rate, true_positive_rate
    from sklearn.metrics import accuracy_score

    y_true, y_pred = np.asarray(y_true, bool), np.asarray(y_pred, bool)
    rng = np.random.default_rng(seed)
    groupings = [[c] for c in sensitive] + ([sensitive] if len(sensitive) > 1 else [])
    result: dict[str, Any] = {"n": int(len(y_true)), "positive_rate": float(y_true.mean()),
                              "selection_rate": float(y_pred.mean()), "groupings": {}, "warnings": []}
    # bootstrap resamples as example weights, drawn once and shared by every grouping
    weights = [np.bincount(rng.integers(0, len(y_true), len(y_true)), minlength=len(y_true)).astype(float)
               for _ in range(bootstrap)]
    for cols in groupings:
        key = " & ".join(cols)
        g = group_labels(groups, cols)
        codes, names = group_index(g)
        k = len(names)
        counts = np.bincount(codes, minlength=k)
        positives = np.bincount(codes, y_true.astype(float), k)
        for name, c, pos in zip(names, counts, positives):
            if pos == 0 or pos == c:
                what = "positive" if pos == 0 else "negative"
                raise NetwrightError(f"group '{name}' has no {what} ('{labels[0] if pos == 0 else labels[1]}') "
                                     f"examples among {c}; true and false positive rates are undefined - audit on "
                                     "more data (--data FILE) or merge small groups")
            if c < min_group_size:
                result["warnings"].append(f"group '{name}' has only {int(c)} examples (< {min_group_size}): "
                                          "too few to judge; its rates are uncertain")
        mf = MetricFrame(metrics={"count": count, "accuracy": accuracy_score, "selection_rate": selection_rate,
                                  "true_positive_rate": true_positive_rate,
                                  "false_positive_rate": false_positive_rate},
                         y_true=y_true, y_pred=y_pred, sensitive_features=pd.Series(g, name=key))
        table = mf.by_group
        boot = [_rates(codes, k, y_true, y_pred, w) for w in weights]
        rows = []
        for i, name in enumerate(names):
            row = {"group": name, **{m: float(table.loc[name, m]) for m in table.columns}}
            row["count"] = int(row["count"])
            mask = codes == i
            row["mean_score"] = float(score[mask].mean())
            row["calibration_gap"] = float(score[mask].mean() - y_true[mask].mean())
            probs = torch.tensor(np.stack([1 - score[mask], score[mask]], 1))
            row["ece"] = expected_calibration_error(probs, torch.tensor(y_true[mask].astype(np.int64)), bins=10)[0]
            if boot:
                for m in ("selection_rate", "true_positive_rate", "false_positive_rate", "accuracy"):
                    row[f"{m}_ci"] = _ci([b[m][i] for b in boot])
            rows.append(row)
        gaps = _gaps(_rates(codes, k, y_true, y_pred))
        boot_gaps = [_gaps(b) for b in boot]
        gap_rows = {name: {"value": v, "ci": _ci([b[name] for b in boot_gaps]) if boot else None}
                    for name, v in gaps.items()}
        result["groupings"][key] = {"groups": rows, "gaps": gap_rows}
    result["sensitive"] = sensitive
    result["ci_level"] = CI_LEVEL
    result["bootstrap"] = bootstrap
    return result


def _ci(values: list[float]) -> list[float] | None:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return None
    lo = (1 - CI_LEVEL) / 2 * 100
    return [float(np.percentile(v, lo)), float(np.percentile(v, 100 - lo))]


def decisions(model: torch.nn.Module, x: torch.Tensor, positive: int) -> tuple[np.ndarray, np.ndarray]:
    """(positive-class probability, predicted-positive) for inputs ``x``."""
    with torch.no_grad():
        probs = torch.softmax(torch.cat([model(x[i:i + 1024]) for i in range(0, len(x), 1024)]).double(), 1)
    return probs[:, positive].numpy(), (probs.argmax(1) == positive).numpy()


def load_labelled(run: Run, data_file: str | os.PathLike | None, split: str, sensitive: list[str]):
    """(model inputs, labels, groups) of a split, or of a CSV with the training columns,
    the target and the sensitive columns."""
    info = run.info
    if data_file is None:
        part = run.load_data().split(split)
        return part.x, part.y.numpy(), part.groups
    from ..data.preprocess import encode_table, normalize
    from ..data.tabular import read_csv

    if info.preprocess["kind"] != "table":
        raise NetwrightError("--data takes a CSV for tabular models; this model's inputs are "
                             f"{info.modality}")
    table = read_csv(Path(data_file))
    needed = [info.target_name, *sensitive]
    missing = [c for c in needed if c not in table]
    if missing:
        raise NetwrightError(f"{data_file}: missing column(s) {', '.join(missing)}; an audit needs the target and "
                             "the sensitive columns")
    x = torch.from_numpy(normalize(info.preprocess, encode_table(info.preprocess["columns"], table, str(data_file))))
    index = {c: i for i, c in enumerate(info.class_names)}
    bad = sorted({v.strip() for v in table[info.target_name]} - set(index))
    if bad:
        raise NetwrightError(f"{data_file}: target values not seen in training: {', '.join(bad[:5])}")
    y = np.array([index[v.strip()] for v in table[info.target_name]])
    return x, y, {c: np.array([v.strip() for v in table[c]]) for c in sensitive}


@writes_run("netwright audit")
def audit(run: Run | str | os.PathLike, data: str | os.PathLike | None = None, split: str = "test",
          plots: bool = True) -> dict[str, Any]:
    """Audit a trained classifier by group; writes ``audit.json`` and ``fairness/audit.png``.

    Args:
        data: a CSV with the training columns plus target and sensitive columns (default: the
            run's own ``split``).
    """
    run = run if isinstance(run, Run) else Run.open(run)
    from ..generative import require_supervised

    require_supervised(run, "audit")
    fair = run.spec.fairness
    info = run.info
    sensitive, positive = resolve(info, fair)
    x, y, groups = load_labelled(run, data, split, sensitive)
    score, pred = decisions(run.load_model(), x, positive)
    names = info.class_names
    negative = "not " + names[positive] if len(names) > 2 else names[1 - positive]
    result = audit_predictions(y == positive, pred, score, groups, sensitive, fair.min_group_size, fair.bootstrap,
                               seed=run.spec.seed, labels=(names[positive], negative))
    result.update(positive_label=names[positive], source=str(data) if data else f"{split} split")
    run.write_json("audit.json", result)
    if plots:
        from .pictures import audit_plot

        audit_plot(result, run.file("fairness") / "audit.png")
    return result
