"""The ``monitor`` stage: has new data drifted away from the training data?

Per feature and for the model's predictions, tests corrected together (``netwright.data.drift``),
so the chance of any false alarm on data from the training distribution stays at
``fairness.drift_alpha``. When the new data carries labels (and sensitive columns), a
classifier's accuracy and the audit's gaps are reported too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.derive import input_columns
from ..data.drift import monitor_arrays
from ..data.preprocess import encode_table, normalize
from ..data.tabular import read_csv
from ..errors import NetwrightError
from ..fairness.groups import positive_index
from ..run import Run, writes_run
from ..tasks import run_task


@writes_run("netwright monitor")
def monitor(run: Run | str | os.PathLike, new_data: str | os.PathLike, name: str | None = None,
            plots: bool = True) -> dict[str, Any]:
    """Compare a CSV of new data with the run's training data; writes ``monitor/<name>.json``.

    Returns the report; ``report["drift"]`` is True when any feature or the predictions drifted.
    """
    run = run if isinstance(run, Run) else Run.open(run)
    task = run_task(run)
    task.require("monitor", run)
    info = run.info
    pre = info.preprocess
    if pre["kind"] != "table":
        raise NetwrightError(f"monitor compares tabular data column by column; this model takes {info.modality} inputs")
    path = Path(new_data)
    table = read_csv(path)
    needed = input_columns(pre)  # as the file had them (dates, not their parts)
    missing = [c for c in needed if c not in table]
    if missing:
        raise NetwrightError(f"{path}: missing column(s) {', '.join(missing)}; the model was trained on "
                             f"{', '.join(needed)}")
    new_x = normalize(pre, encode_table(pre["columns"], table, str(path), pre.get("derived")))
    if len(new_x) < 2:
        raise NetwrightError(f"{path}: needs at least 2 rows to compare distributions")
    data = run.load_data()
    ref_x = data.train.x.numpy()
    model = run.load_model()
    fair = run.spec.fairness
    positive = positive_index(info.class_names or [""], fair.positive_label)
    with torch.no_grad():
        ref_out, new_out = model(data.train.x), model(torch.from_numpy(new_x))
    ref_pred, new_pred = task.watched(ref_out, positive), task.watched(new_out, positive)
    report = monitor_arrays(ref_x, new_x, pre["columns"], ref_pred, new_pred, fair.drift_alpha)
    report.update(source=str(path), rows=len(new_x), reference="train split", reference_rows=len(ref_x))
    if task.picks_class:
        report.update(_labelled(run, table, new_out))
    name = name or path.stem
    run.write_json(f"monitor/{name}.json", report)
    if plots:
        from ..fairness.pictures import drift_plot

        drift_plot(report["features"], fair.drift_alpha, run.file("monitor") / f"{name}.png")
    return report


def _labelled(run: Run, table: dict[str, list[str]], out: torch.Tensor) -> dict[str, Any]:
    """A classifier's accuracy and the audit's gaps when the new data has the target (and sensitive) columns."""
    info = run.info
    if info.target_name not in table:
        return {}
    index = {c: i for i, c in enumerate(info.class_names)}
    values = [v.strip() for v in table[info.target_name]]
    if any(v not in index for v in values):
        return {"labels": "target column holds unknown classes; accuracy not computed"}
    y = np.array([index[v] for v in values])
    extra: dict[str, Any] = {"accuracy": float((out.argmax(1).numpy() == y).mean())}
    fair = run.spec.fairness
    sensitive = list(fair.sensitive) or list(info.sensitive)
    if sensitive and all(c in table for c in sensitive):
        from ..fairness.audit import audit_predictions
        from ..fairness.groups import resolve

        _, positive = resolve(info, fair)
        score = torch.softmax(out.double(), 1)[:, positive].numpy()
        audit = audit_predictions(y == positive, out.argmax(1).numpy() == positive, score,
                                  {c: np.array([v.strip() for v in table[c]]) for c in sensitive}, sensitive,
                                  fair.min_group_size, bootstrap=min(fair.bootstrap, 200))
        extra["gaps"] = {k: {g: v["value"] for g, v in grouping["gaps"].items()}
                         for k, grouping in audit["groupings"].items()}
    return extra
