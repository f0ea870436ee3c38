"""The ``compare`` stage: one self-contained page over several runs, a tuning study or the folds
of a cross-validation (spec differences, learning curves, test metrics, Pareto fronts)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ..atomic import write_text
from ..report.compare import DEFAULT_OUT, MISSING, load, render, resolve, spec_diff
from ..run import Run


def compare(runs: list[str | os.PathLike | Run], out: str | os.PathLike | None = None) -> dict[str, Any]:
    """Write one page comparing ``runs`` (run directories, or folders holding runs).

    Args:
        runs: at least two runs after folders are expanded to the runs in them.
        out: the page to write (a folder: ``compare.html`` in it) [default: ``./compare.html``].

    Returns:
        ``path`` of the page, the ``runs`` compared, the ``spec_diff`` shown, the runs
        ``not_evaluated`` and ``notes`` on folder entries that were skipped.
    """
    entries, studies, notes = resolve(runs)
    for x in entries:
        load(x)
    path = Path(out) if out is not None else Path(DEFAULT_OUT)
    if path.is_dir() or str(out).endswith(("/", os.sep)):
        path = path / DEFAULT_OUT
    diff = spec_diff(entries)
    with tempfile.TemporaryDirectory() as tmp:
        page = render(entries, studies, notes, diff, Path(tmp))
    write_text(path, page)
    return {"path": str(path), "runs": [{"label": x.label, "path": str(x.run.path), "evaluated": x.eval is not None}
                                        for x in entries],
            "spec_diff": {k: [None if v is MISSING else v for v in vs] for k, vs in diff},
            "not_evaluated": [x.label for x in entries if x.eval is None], "notes": notes}
