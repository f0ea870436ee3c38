"""The ``export`` stage: a one-file ONNX model, verified by ONNX Runtime against PyTorch."""

from __future__ import annotations

import os
from typing import Any

from ..deploy.verify import export_verified
from ..errors import NetwrightError
from ..run import Run, writes_run
from ..tasks import run_task


@writes_run("netwright export")
def export(run: Run | str | os.PathLike, variant: str | None = None, format: str = "onnx",
           samples: int = 512, register: str | None = None) -> dict[str, Any]:
    """Export the run's model (or a compressed variant) to ONNX and verify it.

    Writes ``export/model.onnx`` (``export/<variant>/model.onnx``) and ``verify.json`` beside it.
    What is exported is the kind's: a classifier's logits (divided by its temperature when it was
    calibrated), a regressor's values, a GAN's generator. A run tracked with MLflow
    (``tracking.json``) gets the verified file as an artefact; ``register`` makes it a version of
    that registered MLflow model (``result["tracking"]``).

    Raises:
        NetwrightError: an unknown format or variant, or a verification that fails.
    """
    run = run if isinstance(run, Run) else Run.open(run)
    if format != "onnx":
        raise NetwrightError(f"--format {format}: only onnx is supported")
    task = run_task(run)
    task.require("export", run)
    return _tracked(run, export_verified(run, task, variant, samples), register)


def _tracked(run: Run, result: dict[str, Any], register: str | None) -> dict[str, Any]:
    """The verified file logged to the run's MLflow run (and registered), when there is one."""
    from ..training.tracking import log_export

    logged = log_export(run, result["onnx"], register)
    return {**result, "tracking": logged} if logged else result
