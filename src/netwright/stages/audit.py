"""The ``audit`` stage: a classifier's decisions by group, each gap with a signed interval, beside
the data's own gap, proxies of the sensitive columns and a summary -> ``audit.json``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..fairness.audit import audit_predictions, decisions, load_labelled, proxy_check, summary
from ..fairness.groups import resolve
from ..run import AUDIT, Run, writes_run
from ..tasks import run_task


@writes_run("netwright audit")
def audit(run: Run | str | os.PathLike, data: str | os.PathLike | None = None, split: str = "test",
          plots: bool = True) -> dict[str, Any]:
    """Audit a trained classifier by group; writes ``audit.json`` and ``fairness/audit.png`` for
    the test split, ``fairness/audit-<name>.json`` and ``.png`` beside them for another file or
    split (``result["written"]`` lists them).

    Args:
        data: a CSV with the training columns plus target and sensitive columns (default: the
            run's own ``split``).
    """
    run = run if isinstance(run, Run) else Run.open(run)
    run_task(run).require("audit", run)
    fair = run.spec.fairness
    info = run.info
    sensitive, positive = resolve(info, fair)
    x, y, groups = load_labelled(run, data, split, sensitive)
    score, pred = decisions(run.load_model(), x, positive)
    names = info.class_names
    negative = "not " + names[positive] if len(names) > 2 else names[1 - positive]
    result = audit_predictions(y == positive, pred, score, groups, sensitive, fair.min_group_size, fair.bootstrap,
                               seed=run.spec.seed, labels=(names[positive], negative))
    result.update(positive_label=names[positive], source=str(data) if data else f"{split} split")
    if info.modality == "tabular":
        train = run.load_data().train
        result["proxies"] = {c: proxy_check(train.x.numpy(), train.groups[c], x.numpy(), groups[c],
                                            info.feature_names, run.spec.seed) for c in sensitive}
    result["summary"] = summary(result)
    json_name, png_name = audit_files(data, split)
    result["written"] = [json_name] + ([png_name] if plots else [])
    run.write_json(json_name, result)
    if plots:
        from ..fairness.pictures import audit_plot

        audit_plot(result, run.file(png_name))
    return result


def audit_files(data: str | os.PathLike | None, split: str) -> tuple[str, str]:
    """Where an audit is written: the test split's is the run's ``audit.json`` (the card's); an
    audit of another file or split goes beside it (``fairness/audit-<name>.json``), so it never
    replaces the one the card and ``mitigate`` read."""
    if data is None and split == "test":
        return AUDIT, "fairness/audit.png"
    stem = Path(data).stem if data is not None else f"{split}-split"
    return f"fairness/audit-{stem}.json", f"fairness/audit-{stem}.png"
