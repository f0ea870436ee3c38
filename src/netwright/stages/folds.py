"""The ``train --folds`` stage: one spec trained on K stratified folds, into one study folder.

::

    runs/<name>/folds.json   every fold's validation and test metrics, their mean and spread,
                             and the K models' ensemble on the shared test split
    runs/<name>/fold-1/ ...  each an ordinary run (its spec says data.folds: K, data.fold: i)

The test split is the same for every fold (it is cut before the folds); the rest of the data
is divided into K folds, stratified by class, and fold i is run i's validation split.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

import torch

from ..atomic import write_json
from ..errors import NetwrightError
from ..run import NAME_RE, TRAIN, Run, default_runs_dir
from ..spec import SpecSource, load_spec
from ..tasks import collect_outputs, run_task
from ..training.progress import Mode

FOLDS_FILE = "folds.json"


def is_study(path: str | os.PathLike) -> bool:
    """Whether ``path`` (or a run name under the runs folder) is a cross-validation study."""
    p = Path(path)
    return (p / FOLDS_FILE).is_file() or (not p.is_absolute() and (default_runs_dir() / p / FOLDS_FILE).is_file())


def train_folds(spec: SpecSource, folds: int, overrides: list[str] | None = None, name: str | None = None,
                runs_dir: str | os.PathLike | None = None, overwrite: bool = False,
                progress: Mode = "auto") -> dict[str, Any]:
    """Train ``spec`` on each of ``folds`` folds and score each on the test split; writes
    ``folds.json`` in the study folder and returns it."""
    from .evaluate import evaluate
    from .train import _default_name, train

    if folds < 2:
        raise NetwrightError(f"--folds {folds}: cross-validation needs at least 2 folds")
    resolved = load_spec(spec, overrides)
    study_name = name or resolved.name or _default_name(spec, resolved)
    if not NAME_RE.match(study_name):
        raise NetwrightError(f"run name {study_name!r}: use letters, digits, '.', '_' and '-' (no slashes)")
    study = (Path(runs_dir) if runs_dir is not None else default_runs_dir()) / study_name
    if study.exists() and not overwrite:
        raise NetwrightError(f"'{study_name}' already exists at {study}; pick another --name or pass --overwrite")
    if study.exists() and not (study / FOLDS_FILE).is_file() and any(study.iterdir()):
        raise NetwrightError(f"{study}: exists and is not a cross-validation study; refusing to overwrite it")
    rows = []
    for i in range(1, folds + 1):
        fold_spec = resolved.model_copy(update={"name": None, "data": resolved.data.model_copy(
            update={"folds": folds, "fold": i})})
        run = train(fold_spec, name=f"fold-{i}", runs_dir=study, overwrite=overwrite, progress=progress)
        run_task(run).require("folds", run)
        best = run.read_json(TRAIN)["best"]
        test = evaluate(run, plots=False)["metrics"]
        rows.append({"fold": i, "run": run.name,
                     "val": {k[4:]: v for k, v in best.items() if k.startswith("val_") and v is not None},
                     "test": test})
    result = {"folds": folds, "spec": resolved.model_dump(mode="json"), "rows": rows,
              "summary": {part: spread([r[part] for r in rows]) for part in ("val", "test")},
              "ensemble": ensemble(study, [r["run"] for r in rows])}
    write_json(study / FOLDS_FILE, result)
    return result


def spread(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean, sample standard deviation, min and max of every metric over the folds."""
    keys = [k for k in rows[0] if all(isinstance(r.get(k), (int, float)) for r in rows)]
    return {k: {"mean": statistics.fmean(r[k] for r in rows), "sd": statistics.stdev(r[k] for r in rows),
                "min": min(r[k] for r in rows), "max": max(r[k] for r in rows)} for k in keys}


def ensemble(study: Path, names: list[str]) -> dict[str, Any]:
    """The folds' models together on the shared test split: averaged probabilities for a
    classifier, averaged predictions for a regressor."""
    runs = [Run.open(study / n) for n in names]
    test = runs[0].load_data().split("test")
    task = run_task(runs[0])
    outputs = [collect_outputs(r.load_model(), task, test, 1024, torch.device("cpu")) for r in runs]
    return {"models": len(runs), "split": "test", "n": len(test), "metrics": task.ensemble_metrics(outputs)}


def evaluate_study(path: str | os.PathLike) -> dict[str, Any]:
    """Score a study's ensemble on the test split again (``netwright evaluate STUDY``)."""
    p = Path(path)
    study = p if (p / FOLDS_FILE).is_file() else default_runs_dir() / p
    result = Run(study).read_json(FOLDS_FILE)
    result["ensemble"] = ensemble(study, [r["run"] for r in result["rows"]])
    write_json(study / FOLDS_FILE, result)
    return result
