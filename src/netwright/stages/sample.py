"""The ``sample`` stage: new examples drawn from a generative run (a GAN)."""

from __future__ import annotations

import os
from pathlib import Path

from ..run import Run, writes_run
from ..tasks import run_task


@writes_run("netwright sample")
def sample(run: Run | str | os.PathLike, n: int = 64, label: int | None = None, out: str | os.PathLike | None = None,
           seed: int = 0) -> Path:
    """Generate ``n`` samples (of class ``label`` from a conditional GAN): a picture grid for
    images, a CSV in the data's columns for tables; returns the file written."""
    run = run if isinstance(run, Run) else Run.open(run)
    task = run_task(run)
    task.require("sample", run)
    return task.sample(run, n, label, out, seed)
