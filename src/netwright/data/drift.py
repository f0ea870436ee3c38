"""Has new data drifted from the training data? Per column a two-sample Kolmogorov-Smirnov test
(numeric) or a chi-square test of the category counts (categorical), and the same for a model's
predictions; all p-values corrected together (Holm), so the chance of any false alarm on data
from the training distribution stays at the chosen alpha."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import chi2_contingency, ks_2samp

from .layout import column_blocks


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
