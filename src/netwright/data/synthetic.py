"""Synthetic biased data with a known, planted gap (for tests and demonstrations).

Two groups, A (60%) and B (40%). The label is ``1[x1 + 0.5 x2 + shift(group) + noise > 0]``,
with the shift chosen so that the positive rates of A and B differ by exactly ``gap`` in the
population. The group itself is not a feature, but ``region`` is a noisy proxy for it, so a
network trained on this data learns the gap: fairness through unawareness does not help.
"""

from __future__ import annotations

import math

import numpy as np
from statistics import NormalDist

from .info import RawData
from .registry import register_dataset

NOISE = 0.8
_NORMAL = NormalDist()  # the standard normal (stdlib: no SciPy import to list the data sets)
SCALE = math.sqrt(1.0 + 0.25 + NOISE**2)  # std of x1 + 0.5 x2 + noise


def group_shift(gap: float) -> float:
    """Half the score shift between groups that makes P(y=1|A) - P(y=1|B) = gap."""
    return SCALE * _NORMAL.inv_cdf((1.0 + gap) / 2.0)


def positive_rates(gap: float) -> tuple[float, float]:
    """Population positive rates of groups A and B."""
    s = group_shift(gap)
    return float(_NORMAL.cdf(s / SCALE)), float(_NORMAL.cdf(-s / SCALE))


@register_dataset("biased", modality="tabular", task="classification")
def biased(n: int = 4000, gap: float = 0.15, shift: float = 0.0, seed: int = 0) -> RawData:
    """Synthetic loan decisions with a planted demographic-parity gap between groups A and B (sensitive: group).

    Args:
        n: rows.
        gap: P(approved | A) - P(approved | B) in the population.
        shift: move the mean of feature x1 by this many standard deviations (to test drift).
        seed: random seed.
    """
    if not -1 < gap < 1:
        from ..errors import DataError

        raise DataError(f"data.gap {gap}: a difference of rates must lie in (-1, 1)")
    rng = np.random.default_rng(seed)
    group_b = rng.random(n) < 0.4
    x1 = rng.normal(shift, 1.0, n)
    x2, x3, x4 = rng.normal(size=(3, n))
    region = group_b.astype(float) + rng.normal(0.0, 0.3, n)  # a proxy for the group
    s = group_shift(gap)
    score = x1 + 0.5 * x2 + np.where(group_b, -s, s) + rng.normal(0.0, NOISE, n)
    y = (score > 0).astype(np.int64)
    names = ["x1", "x2", "x3", "x4", "region"]
    x = np.stack([x1, x2, x3, x4, region], axis=1).astype(np.float32)
    return RawData(
        x=x,
        y=y,
        task="classification",
        modality="tabular",
        preprocess={"kind": "table", "shape": [len(names)], "columns": [{"name": c, "kind": "numeric"} for c in names]},
        class_names=["denied", "approved"],
        feature_names=names,
        target_name="decision",
        groups={"group": np.where(group_b, "B", "A")},
        source=f"netwright.data.synthetic (planted gap {gap}, seed {seed})",
    )


def write_csv(path: str, n: int = 1000, gap: float = 0.15, shift: float = 0.0, seed: int = 0) -> str:
    """Write a draw of the synthetic data as a CSV (features, the sensitive column, the decision)."""
    from ..atomic import write_text

    raw = biased(n=n, gap=gap, shift=shift, seed=seed)
    header = raw.feature_names + ["group", raw.target_name]
    lines = [",".join(header)]
    for x, g, y in zip(raw.x, raw.groups["group"], raw.y):
        lines.append(",".join(f"{v:.6g}" for v in x) + f",{g},{raw.class_names[y]}")
    write_text(path, "\n".join(lines) + "\n")
    return path
