"""The ``calibrate`` stage: temperature scaling of a classifier's probabilities -> ``calibration.json``.

One temperature ``T > 0`` is fitted on the validation split's logits by minimising the negative
log-likelihood of ``softmax(logits / T)`` (Guo et al. 2017). NLL is convex in ``1 / T``, so a
bounded scalar search over ``log T`` finds its minimum; ``T = 1`` (the model as trained) is kept
whenever the search does not beat it, so the validation NLL never rises. Dividing every logit by
the same positive number keeps their order: the predicted class, and so accuracy, is unchanged.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .errors import NetwrightError
from .run import Run, writes_run

if TYPE_CHECKING:
    from torch import nn

    from .data.info import Dataset

LOG_T_BOUNDS = (math.log(0.01), math.log(100.0))  # the search range of T: 0.01 .. 100


def nll(logits: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``softmax(logits / temperature)`` at the targets (float64)."""
    z = torch.as_tensor(logits).double() / temperature
    return float(torch.nn.functional.cross_entropy(z, torch.as_tensor(target).long()))


def fit_temperature(logits: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> dict[str, Any]:
    """The temperature minimising the NLL of ``softmax(logits / T)`` on ``(logits, target)``.

    Returns ``temperature``, ``nll_before`` (T = 1) and ``nll_after`` (<= ``nll_before``).
    """
    from scipy.optimize import minimize_scalar

    z = torch.as_tensor(logits).double()
    y = torch.as_tensor(target).long()
    found = minimize_scalar(lambda log_t: nll(z, y, math.exp(log_t)), bounds=LOG_T_BOUNDS, method="bounded",
                            options={"xatol": 1e-6})
    before = nll(z, y)
    t, after = math.exp(float(found.x)), float(found.fun)
    note = None
    if not after < before:  # T = 1 is a candidate: calibration never makes the validation NLL worse
        t, after = 1.0, before
    elif after < SEPARABLE_NLL:  # every validation example right with a margin: NLL falls as T -> 0
        note = (f"the validation split is separated perfectly (NLL {after:.1e} at T = {t:.3g}), so it cannot tell "
                "how confident the model should be; T = 1 kept")
        t, after = 1.0, before
    return {"temperature": t, "nll_before": before, "nll_after": after, **({"note": note} if note else {})}


SEPARABLE_NLL = 1e-4  # a validation NLL this low: the split no longer constrains the temperature


def temperature(run: Run) -> float:
    """The run's fitted temperature (``calibration.json``), or 1.0 when it was not calibrated."""
    if not run.has("calibration.json"):
        return 1.0
    return float(run.read_json("calibration.json")["temperature"])


def probabilities(logits: np.ndarray | torch.Tensor, temperature: float = 1.0) -> np.ndarray:
    """``softmax(logits / temperature)`` along the last axis, float64 (NumPy or torch logits in)."""
    z = np.asarray(logits.detach().cpu().numpy() if isinstance(logits, torch.Tensor) else logits, np.float64)
    z = z / temperature
    p = np.exp(z - z.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True)


def brier_score(probs: np.ndarray, target: np.ndarray) -> float:
    """Multi-class Brier score: mean over examples of ``sum_k (p_k - [y = k])^2``."""
    probs = np.asarray(probs, np.float64)
    onehot = np.eye(probs.shape[1])[np.asarray(target, np.int64)]
    return float(((probs - onehot) ** 2).sum(1).mean())


def calibration_scores(logits: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor,
                       temperature: float = 1.0) -> dict[str, float]:
    """ECE (15 bins, (lo, hi]), Brier score and NLL of ``softmax(logits / temperature)``."""
    from .metrics import expected_calibration_error

    p = probabilities(logits, temperature)
    y = np.asarray(target.numpy() if isinstance(target, torch.Tensor) else target, np.int64)
    ece, _ = expected_calibration_error(torch.from_numpy(p), torch.from_numpy(y))
    return {"ece": ece, "brier": brier_score(p, y), "nll": nll(logits, y, temperature)}


def split_logits(model: "nn.Module", data: "Dataset", split: str, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's logits and the targets on one split of the run's data."""
    from .spec import TrainSpec
    from .tasks import SupervisedTask
    from .training.trainer import collect_outputs

    task = SupervisedTask(data.info, TrainSpec())
    out = collect_outputs(model, task, data.split(split), batch_size, torch.device("cpu"))
    return out["output"].double(), out["target"]


def require_classifier_with_val(run: Run, verb: str) -> None:
    """Temperature scaling (and conformal sets) need a classifier and a validation split."""
    from .generative import require_supervised

    require_supervised(run, verb)
    info = run.info
    if info.task != "classification":
        raise NetwrightError(f"{verb} applies to classifiers; {run.path} is a {info.task} model (regressors get "
                             f"intervals instead: 'netwright evaluate {run.path} --coverage 0.9')")
    require_val(run)


def require_val(run: Run) -> None:
    """Calibration (a temperature, conformal thresholds) is fitted on the run's validation split."""
    if not run.info.splits.get("val"):
        raise NetwrightError(f"{run.path} has no validation split to calibrate on; train it again with data.val "
                             "above 0 (e.g. --set data.val=0.15)")


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
    require_classifier_with_val(run, "calibrate")
    model = model if model is not None else run.load_model()
    data = data if data is not None else run.load_data()
    logits, y = split_logits(model, data, "val")
    fit = fit_temperature(logits, y)
    t = fit["temperature"]
    before, after = calibration_scores(logits, y), calibration_scores(logits, y, t)
    result = {"method": "temperature scaling (one T for all classes; probabilities = softmax(logits / T))",
              "temperature": t, "split": "val", "n": len(y),
              "val_nll_before": fit["nll_before"], "val_nll_after": fit["nll_after"],
              "val_ece_before": before["ece"], "val_ece_after": after["ece"],
              "val_brier_before": before["brier"], "val_brier_after": after["brier"],
              "search": f"bounded scalar search (scipy minimize_scalar) over log T in [{LOG_T_BOUNDS[0]:.4f}, "
                        f"{LOG_T_BOUNDS[1]:.4f}], T = 1 kept unless beaten",
              **({"note": fit["note"]} if "note" in fit else {})}
    run.write_json("calibration.json", result)
    return result



def served_temperature(run: Run, onnx_folder: str | os.PathLike | None = None) -> float:
    """What a server divides a classifier's raw outputs by before the softmax: the run's
    temperature ``T``; for outputs of an ONNX file (``onnx_folder``) whose graph already divides by
    the ``T0`` its ``verify.json`` records, ``T / T0`` (1.0 unless calibrated again since export)."""
    import json
    from pathlib import Path

    if run.info.task != "classification":
        return 1.0
    t = temperature(run)
    verify = Path(onnx_folder) / "verify.json" if onnx_folder is not None else None
    if verify is not None and verify.is_file():
        t /= float(json.loads(verify.read_text(encoding="utf-8")).get("temperature", 1.0))
    return t


def check_calibrate_spec(spec: Any, info: Any) -> None:
    """``train.calibrate: true`` is checked before training: a classifier with a validation split."""
    from .models import MODELS

    if not spec.train.calibrate:
        return
    if info.task != "classification" or MODELS.get(spec.model.name).meta.get("task") is not None:
        raise NetwrightError(f"train.calibrate: temperature scaling applies to classifiers, '{info.name}' is "
                             f"{info.task} with {spec.model.name}; drop train.calibrate")
    if not info.splits.get("val"):
        raise NetwrightError("train.calibrate: needs a validation split to fit the temperature on; set data.val "
                             "above 0 or drop train.calibrate")
    if spec.continual is not None:
        raise NetwrightError("train.calibrate: not applied after continual learning; drop it and run "
                             "'netwright calibrate RUN' when training ends")
