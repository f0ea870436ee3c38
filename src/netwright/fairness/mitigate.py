"""The ``mitigate`` stage: train (or post-process) mitigated models and compare them in one table.

Pre-processing (reweighing) and in-processing (the gap penalty, optionally swept over its
weight) retrain the run's spec with ``fairness.mitigation`` set, into
``fairness/<variant>/`` (each a complete run); post-processing fits group thresholds on the
validation split. Every variant is scored on the same test split: accuracy and the gaps, with
the signed intervals of the audit, then judged: a variant whose decisions are (nearly) constant
or less accurate than always predicting the majority outcome is degenerate and excluded; one
that widens the gap it targets is flagged; the Pareto-optimal variants (accuracy against the
targeted gap) are named and one is recommended within an accuracy budget.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from ..data.info import Dataset
from ..errors import NetwrightError
from ..run import Run, writes_run
from .audit import _gaps, _rates, decisions, signed_gaps
from .groups import group_index, group_labels, resolve
from .postprocess import apply_thresholds, fit_thresholds

METHODS = ("reweighing", "penalty", "thresholds")
SWEEP = (0.1, 0.3, 1.0, 3.0, 10.0)
# a variant that decides otherwise for fewer examples than this share of the labels' minority
# outcome decides (almost) the same for all: on labels 50/50, under 5% of the examples
NEAR_CONSTANT = 0.1
BUDGET_POINTS = 1.0  # accuracy points a recommended variant may lose, unless told otherwise


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


def _row(method: str, label: str, pred: np.ndarray, y: np.ndarray, codes: np.ndarray, names: list[str],
         weight: float | None = None, target: str = "demographic_parity", resamples: int = 1000,
         seed: int = 0) -> dict[str, Any]:
    gaps = _gaps(_rates(codes, len(names), y, pred))
    intervals = signed_gaps(codes, names, y, pred, resamples, seed)
    return {"method": method, "label": label, "weight": weight, "target": target,
            "accuracy": float((pred == y).mean()), "selection_rate": float(pred.mean()), **gaps,
            "intervals": {k: intervals[k] for k in ("demographic_parity_difference", "equalized_odds_difference")}}


def judge(rows: list[dict[str, Any]], majority_accuracy: float, budget: float = BUDGET_POINTS) -> dict[str, Any]:
    """Flag degenerate variants and those that widen their targeted gap (in place, ``flags``),
    name the Pareto-optimal ones and recommend one: the smallest targeted gap among the sound
    variants that lose at most ``budget`` accuracy points, or the original when none helps."""
    base = rows[0]
    for r in rows:
        gap = f"{r['target']}_difference"
        r["accuracy_points"] = round(100 * (r["accuracy"] - base["accuracy"]), 3)
        dp0 = base["demographic_parity_difference"]
        r["parity_gap_reduction"] = 1 - r["demographic_parity_difference"] / dp0 if dp0 > 0 else 0.0
        flags = []
        if min(r["selection_rate"], 1 - r["selection_rate"]) < NEAR_CONSTANT * (1 - majority_accuracy):
            flags.append(f"degenerate: decides the same for {max(r['selection_rate'], 1 - r['selection_rate']):.0%} "
                         "of the examples")
        elif r["accuracy"] < majority_accuracy:
            flags.append(f"degenerate: accuracy {r['accuracy']:.3f} is below always predicting the majority outcome "
                         f"({majority_accuracy:.3f})")
        if r is not base and r[gap] > base[gap]:
            flags.append(f"worse: widens the {r['target'].replace('_', ' ')} gap it targets "
                         f"({base[gap]:.3f} -> {r[gap]:.3f})")
        r["flags"] = flags
    sound = [r for r in rows if not any(f.startswith("degenerate") for f in r["flags"])]
    for r in rows:  # Pareto-optimal: no sound variant is at least as accurate with a smaller targeted gap
        gap = f"{r['target']}_difference"
        r["pareto"] = r in sound and not any(
            o is not r and o["accuracy"] >= r["accuracy"] and o[gap] <= r[gap]
            and (o["accuracy"] > r["accuracy"] or o[gap] < r[gap]) for o in sound)
    within = [r for r in sound[1:] if not r["flags"] and r["accuracy_points"] >= -budget
              and r[f"{r['target']}_difference"] < base[f"{r['target']}_difference"]]
    best = min(within, key=lambda r: (r[f"{r['target']}_difference"], -r["accuracy"])) if within else base
    reason = (f"the smallest targeted gap within {budget:g} accuracy points of the original" if within else
              f"no sound variant narrows its gap within {budget:g} accuracy points; keep the original")
    return {"recommended": best["label"], "reason": reason, "budget_points": budget,
            "majority_accuracy": majority_accuracy, "pareto": [r["label"] for r in rows if r["pareto"]]}


@writes_run("netwright mitigate")
def mitigate(run: Run | str | os.PathLike, methods: list[str] | None = None, sweep: bool = False,
             weights: list[float] | None = None, progress: str = "quiet", budget: float = BUDGET_POINTS) -> dict[str, Any]:
    """Compare mitigations on the test split; writes ``fairness/mitigate.json`` and ``tradeoff.png``.

    Args:
        methods: any of reweighing, penalty, thresholds (default: all three).
        sweep: train the penalty at several weights (``weights``, default 0.1..10) for the
            accuracy/gap trade-off curve.
        budget: accuracy points the recommended variant may lose against the original.
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
    resamples, seed = spec.fairness.bootstrap, spec.seed

    model = run.load_model()
    score, pred = decisions(model, test.x, positive)
    rows = [_row("none", "original", pred, y, codes, names, resamples=resamples, seed=seed)]
    for method in methods:
        if method == "thresholds":
            table = save_thresholds(run, data, model)
            rows.append(_row("thresholds", f"thresholds ({table['constraint']})",
                             apply_thresholds(score, g, table, seed=spec.seed), y, codes, names,
                             target=table["constraint"], resamples=resamples, seed=seed))
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
            target = fair.penalty.constraint if method == "penalty" else "demographic_parity"
            rows.append(_row(method, label, p, y, codes, names, weight=w, target=target, resamples=resamples,
                             seed=seed))

    majority = float(max(y.mean(), 1 - y.mean()))
    result = {"sensitive": sensitive, "positive_label": info.class_names[positive], "split": "test",
              "groups": names, "rows": rows, "judgement": judge(rows, majority, budget)}
    run.write_json("fairness/mitigate.json", result)
    from .pictures import tradeoff_plot

    tradeoff_plot(rows, run.file("fairness") / "tradeoff.png")
    return result
