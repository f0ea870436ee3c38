"""The ``monitor`` stage: has new data drifted away from the training data?

Per feature: a two-sample Kolmogorov-Smirnov test for numeric columns, a chi-square test of
the category counts for categorical ones; the prediction distribution is tested the same
way. All p-values are corrected together (Holm), so the chance of any false alarm on data
from the training distribution stays at ``fairness.drift_alpha``. When the new data carries
labels (and sensitive columns), accuracy and the audit's gaps are reported too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import chi2_contingency, ks_2samp

from ..data.layout import column_blocks
from ..data.preprocess import encode_table, normalize
from ..data.tabular import read_csv
from ..errors import NetwrightError
from ..run import Run, writes_run
from .groups import positive_index


def holm(pvalues: list[float], alpha: float) -> list[bool]:
    """Holm-Bonferroni: which hypotheses are rejected at family-wise error rate ``alpha``."""
    order = np.argsort(pvalues)
    reject = [False] * len(pvalues)
    m = len(pvalues)
    for rank, i in enumerate(order):
        if pvalues[i] > alpha / (m - rank):
            break
        reject[i] = True
    return reject


def drift_tests(reference: np.ndarray, new: np.ndarray, columns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One test per training column (un-normalised or normalised alike: the tests are rank- and
    count-based)."""
    rows = []
    for col, sl in column_blocks(columns):
        if col["kind"] == "numeric":
            res = ks_2samp(reference[:, sl.start], new[:, sl.start])
            rows.append({"feature": col["name"], "test": "ks", "statistic": float(res.statistic),
                         "p_value": float(res.pvalue)})
        else:
            if col["kind"] == "id":  # category indices -> counts per category
                k = len(col["categories"])
                counts = np.stack([np.bincount(a[:, sl.start].astype(np.int64), minlength=k) for a in (reference, new)])
            else:
                counts = np.stack([reference[:, sl].sum(0), new[:, sl].sum(0)])
            counts = counts[:, counts.sum(0) > 0]
            if counts.shape[1] < 2:
                rows.append({"feature": col["name"], "test": "chi2", "statistic": 0.0, "p_value": 1.0})
                continue
            chi2, p, _, _ = chi2_contingency(counts)
            rows.append({"feature": col["name"], "test": "chi2", "statistic": float(chi2 / counts.sum()),
                         "p_value": float(p)})
    return rows


def monitor_arrays(reference_x: np.ndarray, new_x: np.ndarray, columns: list[dict[str, Any]],
                   reference_pred: np.ndarray, new_pred: np.ndarray, alpha: float) -> dict[str, Any]:
    """Feature and prediction drift between two normalised input matrices and their predicted
    positive-class probabilities."""
    rows = drift_tests(reference_x, new_x, columns)
    res = ks_2samp(reference_pred, new_pred)
    rows.append({"feature": "(prediction)", "test": "ks", "statistic": float(res.statistic), "p_value": float(res.pvalue)})
    for row, flag in zip(rows, holm([r["p_value"] for r in rows], alpha)):
        row["drift"] = flag
    return {"alpha": alpha, "correction": "holm", "features": rows,
            "drifted": [r["feature"] for r in rows if r["drift"]], "drift": any(r["drift"] for r in rows)}


@writes_run("netwright monitor")
def monitor(run: Run | str | os.PathLike, new_data: str | os.PathLike, name: str | None = None,
            plots: bool = True) -> dict[str, Any]:
    """Compare a CSV of new data with the run's training data; writes ``monitor/<name>.json``.

    Returns the report; ``report["drift"]`` is True when any feature or the predictions drifted.
    """
    run = run if isinstance(run, Run) else Run.open(run)
    info = run.info
    pre = info.preprocess
    if pre["kind"] != "table":
        raise NetwrightError(f"monitor compares tabular data column by column; this model takes {info.modality} inputs")
    path = Path(new_data)
    table = read_csv(path)
    needed = [c["name"] for c in pre["columns"]]
    missing = [c for c in needed if c not in table]
    if missing:
        raise NetwrightError(f"{path}: missing column(s) {', '.join(missing)}; the model was trained on "
                             f"{', '.join(needed)}")
    new_x = normalize(pre, encode_table(pre["columns"], table, str(path)))
    if len(new_x) < 2:
        raise NetwrightError(f"{path}: needs at least 2 rows to compare distributions")
    data = run.load_data()
    ref_x = data.train.x.numpy()
    model = run.load_model()
    fair = run.spec.fairness
    positive = positive_index(info.class_names or [""], fair.positive_label)
    with torch.no_grad():
        ref_out, new_out = model(data.train.x), model(torch.from_numpy(new_x))
    if info.task == "classification":
        ref_pred = torch.softmax(ref_out, 1)[:, positive].numpy()
        new_pred = torch.softmax(new_out, 1)[:, positive].numpy()
    else:
        ref_pred, new_pred = ref_out[:, 0].numpy(), new_out[:, 0].numpy()
    report = monitor_arrays(ref_x, new_x, pre["columns"], ref_pred, new_pred, fair.drift_alpha)
    report.update(source=str(path), rows=len(new_x), reference="train split", reference_rows=len(ref_x))
    report.update(_labelled(run, table, new_x, new_out, str(path)))
    name = name or path.stem
    run.write_json(f"monitor/{name}.json", report)
    if plots:
        from .pictures import drift_plot

        drift_plot(report["features"], fair.drift_alpha, run.file("monitor") / f"{name}.png")
    return report


def _labelled(run: Run, table: dict[str, list[str]], x: np.ndarray, out: torch.Tensor, source: str) -> dict[str, Any]:
    """Accuracy and the audit's gaps when the new data has the target (and sensitive) columns."""
    info = run.info
    if info.task != "classification" or info.target_name not in table:
        return {}
    index = {c: i for i, c in enumerate(info.class_names)}
    values = [v.strip() for v in table[info.target_name]]
    if any(v not in index for v in values):
        return {"labels": "target column holds unknown classes; accuracy not computed"}
    y = np.array([index[v] for v in values])
    extra: dict[str, Any] = {"accuracy": float((out.argmax(1).numpy() == y).mean())}
    fair = run.spec.fairness
    sensitive = list(fair.sensitive) or list(info.sensitive)
    if sensitive and all(c in table for c in sensitive):
        from .audit import audit_predictions
        from .groups import resolve

        _, positive = resolve(info, fair)
        score = torch.softmax(out.double(), 1)[:, positive].numpy()
        audit = audit_predictions(y == positive, out.argmax(1).numpy() == positive, score,
                                  {c: np.array([v.strip() for v in table[c]]) for c in sensitive}, sensitive,
                                  fair.min_group_size, bootstrap=min(fair.bootstrap, 200))
        extra["gaps"] = {k: {g: v["value"] for g, v in grouping["gaps"].items()}
                         for k, grouping in audit["groupings"].items()}
    return extra
