"""What a tuning study scores: the metric and its direction, a trial's value (its kept epoch's),
and the best trial's test metrics. Kept apart from the study's machinery (storage, workers,
recovery) so that mutation testing (``make mutation``) can reach every line of it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..errors import TrainingError
from ..metrics import lower_is_better
from ..run import WEIGHTS
from ..spec import Spec


def metric_of(spec: Spec) -> str:
    """The column of ``metrics.jsonl`` the study optimises: ``tune.metric``, else the run's monitor
    (``val_loss`` when that is auto)."""
    if spec.tune.metric != "auto":
        return spec.tune.metric
    return "val_loss" if spec.train.monitor == "auto" else spec.train.monitor


def direction_of(spec: Spec) -> str:
    """``minimize`` or ``maximize``: ``tune.direction``, else the metric's own."""
    if spec.tune.direction != "auto":
        return spec.tune.direction
    return "minimize" if lower_is_better(metric_of(spec)) else "maximize"


def trial_value(summary: dict[str, Any], metric: str) -> float:
    """A finished trial's value: ``metric`` at the epoch its run kept (``train.json``: the best
    epoch under ``keep: best``, else the last); a missing or non-finite value fails the trial."""
    kept = summary["best"] if summary.get("kept") == "best" and summary.get("best") else summary["final"]
    value = kept.get(metric)
    if value is None or not math.isfinite(value):
        raise TrainingError(f"{metric} of the kept epoch is {value}")
    return float(value)


def test_metrics(run_dir: Path | None) -> dict[str, float] | None:
    """The best trial's metrics on the test split (``evaluate``), scored after the choice was made
    on validation (a trial on cross-validation folds: its folds' models together); None when its
    run has no weights."""
    if run_dir is None:
        return None
    from .folds import evaluate_study, is_study

    if is_study(run_dir):
        return {k: v for k, v in evaluate_study(run_dir)["ensemble"]["metrics"].items() if isinstance(v, (int, float))}
    if not (run_dir / WEIGHTS).is_file():
        return None
    from ..run import Run
    from .evaluate import evaluate

    return {k: v for k, v in evaluate(Run.open(run_dir), plots=False)["metrics"].items()
            if isinstance(v, (int, float))}
