"""The ``mitigate`` stage: train (or post-process) mitigated models and compare them in one table.

Pre-processing (reweighing) and in-processing (the gap penalty, optionally swept over its
weight) retrain the run's spec with ``fairness.mitigation`` set, into
``fairness/<variant>/`` (each a complete run); post-processing fits group thresholds on the
validation split. Every variant is judged on the validation split, then scored on the test split
(read only once the choice is made): accuracy and the gaps, with the signed intervals of the
audit. Judged: a variant whose decisions are (nearly) constant
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
    """Train the mitigations, choose among them on the validation split and report them all on the
    test split (read only after the choice); writes ``fairness/mitigate.json`` and ``tradeoff.png``.

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
    if data.val is None or not len(data.val.y):
        raise NetwrightError("mitigate chooses among the variants on the validation split and reports them on the "
                             "test split; this run has no validation split: train it with data.val above 0")
    resamples, seed = spec.fairness.bootstrap, spec.seed
    model = run.load_model()

    def scored(split: Any) -> dict[str, Any]:
        """What every variant's row needs of one split: the original's scores, labels and groups."""
        score, pred = decisions(model, split.x, positive)
        g = group_labels(split.groups, sensitive)
        codes, names = group_index(g)
        return {"x": split.x, "score": score, "pred": pred, "y": split.y.numpy() == positive, "g": g,
                "codes": codes, "names": names}

    # each variant: (method, label, its decisions on a split, weight, target); trained before any split is scored
    variants: list[tuple[str, str, Any, float | None, str]] = [
        ("none", "original", lambda s: s["pred"], None, "demographic_parity")]
    for method in methods:
        if method == "thresholds":
            table = save_thresholds(run, data, model)  # fitted on the validation split
            variants.append(("thresholds", f"thresholds ({table['constraint']})",
                             lambda s, t=table: apply_thresholds(s["score"], s["g"], t, seed=spec.seed), None,
                             table["constraint"]))
            continue
        grid = (weights or SWEEP) if (method == "penalty" and sweep) else [spec.fairness.penalty.weight if method == "penalty" else None]
        for w in grid:
            fair = spec.fairness.model_copy(update={"mitigation": method})
            if w is not None:
                fair = fair.model_copy(update={"penalty": fair.penalty.model_copy(update={"weight": w})})
            name = method if w is None else f"penalty-{w:g}"
            variant = train(spec.model_copy(update={"fairness": fair, "name": None}), name=name,
                            runs_dir=run.file("fairness"), overwrite=True, progress=progress).load_model()
            label = method if w is None else f"penalty {fair.penalty.constraint} (lambda {w:g})"
            target = fair.penalty.constraint if method == "penalty" else "demographic_parity"
            variants.append((method, label, lambda s, v=variant: decisions(v, s["x"], positive)[1], w, target))

    def rows(s: dict[str, Any]) -> list[dict[str, Any]]:
        return [variant_row(method, label, decide(s), s["y"], s["codes"], s["names"], weight=w, target=target,
                            resamples=resamples, seed=seed) for method, label, decide, w, target in variants]

    def majority(s: dict[str, Any]) -> float:
        return float(max(s["y"].mean(), 1 - s["y"].mean()))

    val = scored(data.val)
    chosen = rows(val)
    judgement = judge(chosen, majority(val), budget)  # the choice sees the validation split only
    test = scored(data.split("test"))
    reported = rows(test)
    judge(reported, majority(test), budget)  # the test split's own reductions, points and flags, for reading
    for r, c in zip(reported, chosen):
        r["pareto"] = c["pareto"]  # as chosen
        r["validation"] = {k: c[k] for k in ("accuracy", "demographic_parity_difference", "equalized_odds_difference",
                                             "flags")}
    judgement.update(chosen_on="val", n_val=len(val["y"]),
                     reason=judgement["reason"] + " on the validation split")
    result = {"sensitive": sensitive, "positive_label": info.class_names[positive], "split": "test",
              "groups": test["names"], "rows": reported, "judgement": judgement}
    run.write_json(MITIGATE, result)
    from ..fairness.pictures import tradeoff_plot

    tradeoff_plot(reported, run.file("fairness") / "tradeoff.png")
    return result
