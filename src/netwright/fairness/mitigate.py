"""The ``mitigate`` stage: train (or post-process) mitigated models and compare them in one table.

Pre-processing (reweighing) and in-processing (the gap penalty, optionally swept over its
weight) retrain the run's spec with ``fairness.mitigation`` set, into
``fairness/<variant>/`` (each a complete run); post-processing fits group thresholds on the
validation split. Every variant is scored on the same test split: accuracy and the gaps.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from ..data.info import Dataset
from ..errors import NetwrightError
from ..run import Run, writes_run
from .audit import _gaps, _rates, decisions
from .groups import group_index, group_labels, resolve
from .postprocess import apply_thresholds, fit_thresholds

METHODS = ("reweighing", "penalty", "thresholds")
SWEEP = (0.1, 0.3, 1.0, 3.0, 10.0)


def save_thresholds(run: Run, data: Dataset, model: torch.nn.Module) -> dict[str, Any]:
    """Fit post-processing thresholds on the validation split; write ``fairness/thresholds.json``."""
    fair = run.spec.fairness
    sensitive, positive = resolve(data.info, fair)
    split, name = (data.val, "val") if data.val is not None else (data.train, "train")
    score, _ = decisions(model, split.x, positive)
    table = fit_thresholds(score, split.y.numpy() == positive, group_labels(split.groups, sensitive), fair.thresholds)
    table.update(fitted_on=f"{name} split", sensitive=sensitive, positive_label=data.info.class_names[positive])
    run.write_json("fairness/thresholds.json", table)
    return table


def _row(method: str, label: str, pred: np.ndarray, y: np.ndarray, codes: np.ndarray, k: int,
         weight: float | None = None) -> dict[str, Any]:
    gaps = _gaps(_rates(codes, k, y, pred))
    return {"method": method, "label": label, "weight": weight, "accuracy": float((pred == y).mean()),
            "selection_rate": float(pred.mean()), **gaps}


@writes_run("netwright mitigate")
def mitigate(run: Run | str | os.PathLike, methods: list[str] | None = None, sweep: bool = False,
             weights: list[float] | None = None, progress: str = "quiet") -> dict[str, Any]:
    """Compare mitigations on the test split; writes ``fairness/mitigate.json`` and ``tradeoff.png``.

    Args:
        methods: any of reweighing, penalty, thresholds (default: all three).
        sweep: train the penalty at several weights (``weights``, default 0.1..10) for the
            accuracy/gap trade-off curve.
    """
    from ..training import train

    run = run if isinstance(run, Run) else Run.open(run)
    spec = run.spec
    data = run.load_data()
    info = data.info
    sensitive, positive = resolve(info, spec.fairness)
    methods = list(methods or METHODS)
    for m in methods:
        if m not in METHODS:
            raise NetwrightError(f"unknown mitigation '{m}'; choose from {', '.join(METHODS)}")
    test = data.split("test")
    y = test.y.numpy() == positive
    g = group_labels(test.groups, sensitive)
    codes, names = group_index(g)
    k = len(names)

    model = run.load_model()
    score, pred = decisions(model, test.x, positive)
    rows = [_row("none", "original", pred, y, codes, k)]
    for method in methods:
        if method == "thresholds":
            table = save_thresholds(run, data, model)
            rows.append(_row("thresholds", f"thresholds ({table['constraint']})",
                             apply_thresholds(score, g, table, seed=spec.seed), y, codes, k))
            continue
        grid = (weights or SWEEP) if (method == "penalty" and sweep) else [spec.fairness.penalty.weight if method == "penalty" else None]
        for w in grid:
            fair = spec.fairness.model_copy(update={"mitigation": method})
            if w is not None:
                fair = fair.model_copy(update={"penalty": fair.penalty.model_copy(update={"weight": w})})
            name = method if w is None else f"penalty-{w:g}"
            variant = train(spec.model_copy(update={"fairness": fair, "name": None}), name=name,
                            runs_dir=run.file("fairness"), overwrite=True, progress=progress)
            _, p = decisions(variant.load_model(), test.x, positive)
            label = method if w is None else f"penalty {fair.penalty.constraint} (lambda {w:g})"
            rows.append(_row(method, label, p, y, codes, k, weight=w))

    base = rows[0]
    for r in rows:
        r["accuracy_points"] = round(100 * (r["accuracy"] - base["accuracy"]), 3)
        dp0 = base["demographic_parity_difference"]
        r["parity_gap_reduction"] = 1 - r["demographic_parity_difference"] / dp0 if dp0 > 0 else 0.0
    result = {"sensitive": sensitive, "positive_label": info.class_names[positive], "split": "test",
              "groups": names, "rows": rows}
    run.write_json("fairness/mitigate.json", result)
    from .pictures import tradeoff_plot

    tradeoff_plot(rows, run.file("fairness") / "tradeoff.png")
    return result
