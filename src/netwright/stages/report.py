"""The ``report`` stage: the model card, one self-contained page of every stage a run went through."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ..atomic import write_text
from ..run import REPORT_HTML, REPORT_JSON, Run, writes_run
from ..report.collect import collect, pictures
from ..report.html import render


@writes_run("netwright report")
def report(run: Run | str | os.PathLike) -> dict[str, Any]:
    """Write ``report.html`` (pictures embedded, no external assets) and ``report.json``.

    A section appears with numbers only when its stage ran; the card lists the stages that did not.
    """
    run = run if isinstance(run, Run) else Run.open(run)
    card = collect(run)
    pics = pictures(run)
    with tempfile.TemporaryDirectory() as tmp:
        history = card["training"]["history"]
        if "curves" not in pics and history:
            from ..plots import curves_plot

            pics["curves"] = curves_plot(history, Path(tmp) / "curves.png")
        page = render(card, pics)
    run.write_json(REPORT_JSON, card)
    write_text(run.file(REPORT_HTML), page)
    from ..training.tracking import log_artifacts  # a run tracked with MLflow gets the card too

    log_artifacts(run, [run.file(REPORT_HTML), run.file(REPORT_JSON)], "report")
    return card


__all__ = ["report"]
