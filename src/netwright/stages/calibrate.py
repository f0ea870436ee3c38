"""The ``calibrate`` stage: temperature scaling of a classifier's probabilities -> ``calibration.json``.

One temperature ``T > 0`` is fitted on the logits of the validation split's temperature rows
(``netwright.data.roles``: not the rows that chose the kept epoch, nor those of conformal
thresholds) by minimising the negative log-likelihood of ``softmax(logits / T)`` (Guo et al.
2017; ``netwright.calibration``); ``T = 1`` (the model as trained) is kept whenever the search
does not beat it, so the NLL on those rows never rises. Dividing every logit by the same positive number keeps their order: the predicted class,
and so accuracy, is unchanged.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..calibration import LOG_T_BOUNDS, calibration_scores, fit_temperature, require_val
from ..errors import NetwrightError
from ..run import CALIBRATION, Run, writes_run
from ..tasks import run_task, task_class

if TYPE_CHECKING:
    from torch import nn

    from ..data.info import Dataset


@writes_run("netwright calibrate")
def calibrate(run: Run | str | os.PathLike, model: "nn.Module | None" = None,
              data: "Dataset | None" = None) -> dict[str, Any]:
    """Fit a temperature on the validation split's logits and write ``calibration.json``.

    ``predict`` (and ``Model`` in the server, through :func:`temperature` / :func:`probabilities`)
    then report ``softmax(logits / T)``; ``evaluate`` reports ECE, Brier score and NLL before and
    after; ``export`` divides the logits by ``T`` inside the ONNX graph. ``model`` and ``data``
    (the run's own, already loaded) save reloading them right after training.

    Raises:
        NetwrightError: the run is not a classifier, or has no validation split.
    """
    run = run if isinstance(run, Run) else Run.open(run)
    task = run_task(run)
    task.require("calibrate", run)
    require_val(run)
    model = model if model is not None else run.load_model()
    data = data if data is not None else run.load_data()
    logits, y = task.val_outputs(model, data, "temperature", run.spec.data.split_seed)
    fit = fit_temperature(logits, y)
    t = fit["temperature"]
    before, after = calibration_scores(logits, y), calibration_scores(logits, y, t)
    result = {"method": "temperature scaling (one T for all classes; probabilities = softmax(logits / T))",
              "temperature": t, "split": "val", "rows": "temperature", "n": len(y),
              "val_nll_before": fit["nll_before"], "val_nll_after": fit["nll_after"],
              "val_ece_before": before["ece"], "val_ece_after": after["ece"],
              "val_brier_before": before["brier"], "val_brier_after": after["brier"],
              "search": f"bounded scalar search (scipy minimize_scalar) over log T in [{LOG_T_BOUNDS[0]:.4f}, "
                        f"{LOG_T_BOUNDS[1]:.4f}], T = 1 kept unless beaten",
              **({"note": fit["note"]} if "note" in fit else {})}
    run.write_json(CALIBRATION, result)
    return result


def check_calibrate_spec(spec: Any, info: Any) -> None:
    """``train.calibrate: true`` is checked before training: a classifier with a validation split."""
    if not spec.train.calibrate:
        return
    kind = task_class(info, spec.model.name)
    if "calibrate" not in kind.stages:
        raise NetwrightError(f"train.calibrate: temperature scaling applies to classifiers, '{info.name}' with "
                             f"{spec.model.name} makes {kind.title}; drop train.calibrate")
    if not info.splits.get("val"):
        raise NetwrightError("train.calibrate: needs a validation split to fit the temperature on; set data.val "
                             "above 0 or drop train.calibrate")
    if spec.continual is not None:
        raise NetwrightError("train.calibrate: not applied after continual learning; drop it and run "
                             "'netwright calibrate RUN' when training ends")
