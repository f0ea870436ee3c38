"""The ``audit`` stage: how the data and the model treat each group, and the gaps between groups.

Per group (and per intersection of groups): count, the label rate in the data (base rate),
accuracy, selection rate, true and false positive rates, calibration. Gaps: the data's
base-rate difference, the model's demographic parity difference and ratio, equalized odds
difference and equal opportunity difference. Every gap has one sign convention (``SIGN``): of
the two groups furthest apart on the rate it compares, the rate of the group the model selects
more minus that of the group it selects less, so a negative gap is one that goes against the
model's favoured group. The pair is chosen on the full data and kept fixed in every resample, so
its bias-corrected and accelerated (BCa) bootstrap interval (``scipy.stats.bootstrap``) can
include 0, and the audit says when it does. Fairlearn's ``MetricFrame`` computes the group
table. A proxy check says how well the model's inputs predict each sensitive column.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import NetwrightError
from ..metrics import expected_calibration_error
from ..run import Run
from .groups import group_index, group_labels, resolve

CI_LEVEL = 0.95
SIGN = ("each gap is the rate of the group the model selects more minus that of the group it selects less, "
        "of the two groups furthest apart on that rate (a ratio: the less selected group's rate over the other's)")


def _rates(codes: np.ndarray, k: int, t: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Selection rate, TPR, FPR and accuracy per group (``w``: bootstrap multiplicities)."""
    w = np.ones(len(codes)) if w is None else w
    n = np.bincount(codes, w, k)
    pos = np.bincount(codes, w * t, k)
    neg = n - pos
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "base_rate": pos / n,
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


RATES = {  # numerator mask and denominator mask of each rate, from labels t and decisions p
    "base_rate": (lambda t, p: t, lambda t, p: np.ones_like(t)),
    "selection_rate": (lambda t, p: p, lambda t, p: np.ones_like(t)),
    "true_positive_rate": (lambda t, p: t & p, lambda t, p: t),
    "false_positive_rate": (lambda t, p: ~t & p, lambda t, p: ~t),
}
# each gap: (the rate it compares, difference or ratio)
GAPS = {"base_rate_difference": ("base_rate", "difference"),
        "demographic_parity_difference": ("selection_rate", "difference"),
        "demographic_parity_ratio": ("selection_rate", "ratio"),
        "equal_opportunity_difference": ("true_positive_rate", "difference"),
        "false_positive_rate_difference": ("false_positive_rate", "difference")}


def signed_gaps(codes: np.ndarray, names: list[str], t: np.ndarray, p: np.ndarray, resamples: int,
                seed: int) -> dict[str, dict[str, Any]]:
    """Every gap of ``GAPS`` (plus equalized odds: the larger of the TPR and FPR differences in
    size) between the groups furthest apart on the full data, signed as ``SIGN`` says, with BCa intervals over
    ``resamples`` resamples of the rows (percentile intervals where BCa is undefined)."""
    import warnings

    from scipy.stats import DegenerateDataWarning, bootstrap

    k = len(names)
    point = _rates(codes, k, t, p)
    favour = point["selection_rate"]  # the sign convention (SIGN): the more selected group first
    pairs = {}
    for gap, (rate, _) in GAPS.items():
        r = point[rate]
        pair = (int(np.nanargmax(r)), int(np.nanargmin(r)))
        pairs[gap] = pair if favour[pair[0]] >= favour[pair[1]] else pair[::-1]

    def statistic(c: np.ndarray, tt: np.ndarray, pp: np.ndarray, axis: int = -1) -> np.ndarray:
        tt, pp = tt.astype(bool), pp.astype(bool)
        out = []
        with np.errstate(invalid="ignore", divide="ignore"):
            for gap, (rate, kind) in GAPS.items():
                num, den = RATES[rate]
                hi, lo = ((num(tt, pp) & (c == g)).sum(axis) / (den(tt, pp) & (c == g)).sum(axis) for g in pairs[gap])
                out.append(hi - lo if kind == "difference" else lo / hi)
        return np.stack(out)

    values = statistic(codes, t, p)
    ci: np.ndarray | None = None
    method = "BCa"
    if resamples:
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateDataWarning)  # handled below: percentile intervals
            res = bootstrap((codes, t.astype(np.int8), p.astype(np.int8)), statistic, paired=True, vectorized=True,
                            n_resamples=resamples, confidence_level=CI_LEVEL, method="BCa",
                            random_state=np.random.default_rng(seed))
        ci = np.stack([res.confidence_interval.low, res.confidence_interval.high], 1)
        if not np.isfinite(ci).all():  # a resample without a group's positives: BCa undefined
            boot = res.bootstrap_distribution
            for i in np.flatnonzero(~np.isfinite(ci).all(1)):
                ci[i] = _ci(list(boot[i])) or [np.nan, np.nan]
            method = "BCa (percentile where BCa is undefined)"
    out = {}
    for i, (gap, (rate, kind)) in enumerate(GAPS.items()):
        hi, lo = pairs[gap]
        null = 0.0 if kind == "difference" else 1.0
        interval = [float(ci[i, 0]), float(ci[i, 1])] if ci is not None and np.isfinite(ci[i]).all() else None
        out[gap] = {"value": float(values[i]), "ci": interval, "between": [names[hi], names[lo]],
                    "includes_no_gap": bool(interval is not None and interval[0] <= null <= interval[1]),
                    "method": method}
    tpr, fpr = out["equal_opportunity_difference"], out["false_positive_rate_difference"]
    out["equalized_odds_difference"] = dict(tpr if abs(tpr["value"]) >= abs(fpr["value"]) else fpr)
    return out


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
            row["base_rate"] = float(y_true[mask].mean())  # the label rate in the data
            row["mean_score"] = float(score[mask].mean())
            row["calibration_gap"] = float(score[mask].mean() - y_true[mask].mean())
            probs = torch.tensor(np.stack([1 - score[mask], score[mask]], 1))
            row["ece"] = expected_calibration_error(probs, torch.tensor(y_true[mask].astype(np.int64)), bins=10)[0]
            if boot:
                for m in ("base_rate", "selection_rate", "true_positive_rate", "false_positive_rate", "accuracy"):
                    row[f"{m}_ci"] = _ci([b[m][i] for b in boot])
            rows.append(row)
        result["groupings"][key] = {"groups": rows, "gaps": signed_gaps(codes, names, y_true, y_pred, bootstrap,
                                                                         seed)}
    result["sensitive"] = sensitive
    result["sign"] = SIGN
    result["ci_level"] = CI_LEVEL
    result["bootstrap"] = bootstrap
    return result


def proxy_check(x_train: np.ndarray, g_train: np.ndarray, x: np.ndarray, g: np.ndarray,
                feature_names: list[str] | None, seed: int = 0) -> dict[str, Any]:
    """How well the model's inputs predict a sensitive column it was not given: a logistic
    regression fitted on the training split, scored (balanced accuracy, chance = 1 / groups) on
    the audited rows, with the inputs that weigh most (|coefficient| on standardised inputs)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_train)
    clf = LogisticRegression(max_iter=2000, random_state=seed).fit(scaler.transform(x_train), g_train)
    score = float(balanced_accuracy_score(g, clf.predict(scaler.transform(x))))
    weight = np.abs(clf.coef_).max(0)
    names = feature_names or [f"x{i}" for i in range(x.shape[1])]
    top = [{"feature": names[i], "weight": float(weight[i])} for i in np.argsort(-weight)[:3]]
    chance = 1.0 / len(clf.classes_)
    return {"balanced_accuracy": score, "chance": chance, "top_features": top,
            "is_proxy": bool(score > chance + 0.1)}


def summary(result: dict[str, Any]) -> list[str]:
    """The audit's facts, as sentences a reviewer can read: the data's gap, the model's gap,
    whether each interval includes no gap, and the proxies."""
    out = []
    pos = result.get("positive_label", "positive")
    for key, grouping in result["groupings"].items():
        gaps = grouping["gaps"]
        rates = {r["group"]: r for r in grouping["groups"]}
        base, dp = gaps["base_rate_difference"], gaps["demographic_parity_difference"]

        def said(gap: dict[str, Any]) -> str:
            if gap["ci"] is None:
                return f"{gap['value']:.2f}"
            verdict = "which includes 0: no clear gap at this sample size" if gap["includes_no_gap"] else "excluding 0"
            return f"{gap['value']:.2f} (95% interval {gap['ci'][0]:.2f} to {gap['ci'][1]:.2f}, {verdict})"

        a, b = base["between"]
        out.append(f"In the data, '{pos}' is the label of {rates[a]['base_rate']:.0%} of {a} and "
                   f"{rates[b]['base_rate']:.0%} of {b}: a gap of {said(base)}.")
        a, b = dp["between"]
        out.append(f"The model gives '{pos}' to {rates[a]['selection_rate']:.0%} of {a} and "
                   f"{rates[b]['selection_rate']:.0%} of {b}: a gap of {said(dp)}.")
    for col, proxy in (result.get("proxies") or {}).items():
        feats = ", ".join(f["feature"] for f in proxy["top_features"])
        if proxy["is_proxy"]:
            out.append(f"The model's inputs predict {col} with balanced accuracy {proxy['balanced_accuracy']:.2f} "
                       f"(chance {proxy['chance']:.2f}), mostly through {feats}: leaving {col} out of the inputs "
                       "does not keep it out of the model.")
        else:
            out.append(f"The model's inputs barely predict {col} (balanced accuracy "
                       f"{proxy['balanced_accuracy']:.2f}, chance {proxy['chance']:.2f}).")
    return out


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
    from ..data.missing import MISSING_CATEGORY, is_missing
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
    labelled = [i for i, v in enumerate(table[info.target_name]) if not is_missing(v)]  # as in training:
    if len(labelled) < len(table[info.target_name]):  # a row without a target is left out
        table = {c: [v[i] for i in labelled] for c, v in table.items()}
    x = torch.from_numpy(normalize(info.preprocess, encode_table(info.preprocess["columns"], table, str(data_file),
                                                            info.preprocess.get("derived"))))
    index = {c: i for i, c in enumerate(info.class_names)}
    bad = sorted({v.strip() for v in table[info.target_name]} - set(index))
    if bad:
        raise NetwrightError(f"{data_file}: target values not seen in training: {', '.join(bad[:5])}")
    y = np.array([index[v.strip()] for v in table[info.target_name]])
    return x, y, {c: np.array([MISSING_CATEGORY if is_missing(v) else v.strip() for v in table[c]]) for c in sensitive}
