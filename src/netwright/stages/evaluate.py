"""The ``evaluate`` stage: a split scored beside its baseline -> ``eval.json`` and ``eval/*.png``."""

from __future__ import annotations

import os
from typing import Any

from ..errors import NetwrightError
from ..run import EVAL, Run, writes_run
from ..tasks import run_task


@writes_run("netwright evaluate")
def evaluate(run: Run | str | os.PathLike, split: str = "test", plots: bool = True,
             batch_size: int = 1024, coverage: float | None = None) -> dict[str, Any]:
    """Score a run's model on one split of its data and write ``eval.json`` (+ ``eval/*.png``).

    What is scored is the kind's (``netwright.tasks``). Classification: accuracy, macro F1,
    cross-entropy, expected calibration error with its reliability table, confusion matrix,
    per-class precision/recall/F1. Regression: MAE, RMSE, R² in the target's units. Beside them,
    ``baseline``: the same metrics of a baseline fitted on the train split (the majority class
    with the train class shares as its probabilities; the train mean; a unigram model of a language
    model's text; a bag-of-words model of a text classifier's texts; random actions for a policy).
    With ``calibration.json`` (``netwright calibrate``): ECE, Brier score and NLL before and after
    temperature scaling. ``coverage`` (e.g. 0.9): split-conformal prediction sets or intervals
    fitted on the validation split's conformal rows, their empirical coverage and size on ``split``.
    """
    run = run if isinstance(run, Run) else Run.open(run)
    if split not in ("train", "val", "test"):
        raise NetwrightError(f"split '{split}': choose train, val or test")
    task = run_task(run)
    if coverage is not None:
        from ..conformal import check_coverage

        check_coverage(coverage)
        task.require("conformal", run)
        if split == "val":
            raise NetwrightError("--coverage fits its threshold on the validation split, so coverage there holds by "
                                 "construction; evaluate --split test (or train)")
    result = {**task.evaluate(run, split, batch_size=batch_size, coverage=coverage), "headline": task.headline,
              **({"tta": run.spec.train.tta} if run.spec.train.tta else {})}  # outputs averaged over views
    run.write_json(EVAL, result)
    if plots:
        folder = run.file("eval")
        task.plots(run, result, folder)
        history = run.metrics()
        if history:
            from ..plots import curves_plot

            curves_plot(history, folder / "curves.png")
    return result
