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

from ..errors import NetwrightError
from ..fairness.audit import decisions
from ..fairness.groups import group_index, group_labels, resolve
from ..fairness.judging import BUDGET_POINTS, judge, variant_row
from ..fairness.postprocess import apply_thresholds, save_thresholds
from ..run import MITIGATE, Run, writes_run
from ..tasks import run_task

METHODS = ("reweighing", "penalty", "thresholds")
SWEEP = (0.1, 0.3, 1.0, 3.0, 10.0)


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
    from .train import train

    run = run if isinstance(run, Run) else Run.open(run)
    run_task(run).require("mitigate", run)
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
    rows = [variant_row("none", "original", pred, y, codes, names, resamples=resamples, seed=seed)]
    for method in methods:
        if method == "thresholds":
            table = save_thresholds(run, data, model)
            rows.append(variant_row("thresholds", f"thresholds ({table['constraint']})",
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
            rows.append(variant_row(method, label, p, y, codes, names, weight=w, target=target, resamples=resamples,
                             seed=seed))

    majority = float(max(y.mean(), 1 - y.mean()))
    result = {"sensitive": sensitive, "positive_label": info.class_names[positive], "split": "test",
              "groups": names, "rows": rows, "judgement": judge(rows, majority, budget)}
    run.write_json(MITIGATE, result)
    from ..fairness.pictures import tradeoff_plot

    tradeoff_plot(rows, run.file("fairness") / "tradeoff.png")
    return result
