"""Groups, positive labels and sample weights shared by audit, mitigation and monitoring."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.info import DataInfo
from ..errors import NetwrightError


def gap_pair(gap: str, between: list[str]) -> str:
    """How a gap is taken between its two groups: ``a - b``, or ``b / a`` for a ratio."""
    return " / ".join(between[::-1]) if gap.endswith("ratio") else " - ".join(between)


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
    return sensitive, positive_index(info.class_names or [], fairness.positive_label)


YAML_TRUE, YAML_FALSE = {"true", "yes", "y", "on", "1"}, {"false", "no", "n", "off", "0"}


def positive_index(names: list[str], label: str | None) -> int:
    """The index of the favourable class; ``None`` means the last class. A label YAML read as a
    boolean (``yes``, ``true``) matches the class that spells that truth value."""
    if label is None:
        return len(names) - 1
    if label in names:
        return names.index(label)
    if label in ("true", "false"):
        spelled = YAML_TRUE if label == "true" else YAML_FALSE
        hits = [i for i, n in enumerate(names) if n.lower() in spelled]
        if len(hits) == 1:
            return hits[0]
    raise NetwrightError(f"fairness.positive_label: '{label}' is not a class; classes: {', '.join(names)}")


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
