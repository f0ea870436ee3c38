"""Groups, positive labels and sample weights shared by audit, mitigation and monitoring."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.info import DataInfo
from ..errors import NetwrightError


def resolve(info: DataInfo, fairness: Any) -> tuple[list[str], int]:
    """(sensitive columns, index of the positive class) for a fairness spec and data."""
    if info.task != "classification":
        raise NetwrightError("fairness gaps are defined for classification; this run is a regression")
    sensitive = list(fairness.sensitive) or list(info.sensitive)
    if not sensitive:
        raise NetwrightError(f"dataset '{info.name}' has no sensitive columns; for a CSV list them under "
                             "data.sensitive, then name them in fairness.sensitive")
    for col in sensitive:
        if col not in info.sensitive:
            raise NetwrightError(f"fairness.sensitive: unknown sensitive column '{col}'; the data has: "
                                 f"{', '.join(info.sensitive) or 'none'}")
    names = info.class_names or []
    label = fairness.positive_label if fairness.positive_label is not None else names[-1]
    if label not in names:
        raise NetwrightError(f"fairness.positive_label: '{label}' is not a class; classes: {', '.join(names)}")
    return sensitive, names.index(label)


def group_labels(groups: dict[str, np.ndarray], sensitive: list[str]) -> np.ndarray:
    """One label per example: ``sex=F`` for one column, ``sex=F & race=B`` for their intersection."""
    parts = [np.char.add(f"{c}=", np.asarray(groups[c]).astype(str)) for c in sensitive]
    out = parts[0]
    for p in parts[1:]:
        out = np.char.add(np.char.add(out, " & "), p)
    return out


def reweighing(y: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Kamiran & Calders (2012) weights ``P(group) P(label) / P(group, label)``: in the weighted
    data, label and group are independent. Normalised to mean 1."""
    w = np.ones(len(y), dtype=np.float64)
    for gv in np.unique(g):
        for yv in np.unique(y):
            cell = (g == gv) & (y == yv)
            if cell.any():
                w[cell] = (g == gv).mean() * (y == yv).mean() / cell.mean()
    return (w / w.mean()).astype(np.float32)


def group_index(g: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Integer code per example and the group names in code order."""
    names, codes = np.unique(g, return_inverse=True)
    return codes.astype(np.int64), [str(n) for n in names]
