"""Temperature scaling of a classifier's probabilities (the ``calibrate`` stage writes ``calibration.json``).

One temperature ``T > 0`` is fitted on the logits of the validation split's temperature rows
(``netwright.data.roles``) by minimising the negative log-likelihood of ``softmax(logits / T)``
(Guo et al. 2017). NLL is convex in ``1 / T``, so a bounded scalar search over ``log T`` finds its
minimum; ``T = 1`` (the model as trained) is kept whenever the search does not beat it, so the NLL
on those rows never rises. Dividing every logit by the same positive number keeps their order:
the predicted class, and so accuracy, is unchanged.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .errors import NetwrightError
from .run import CALIBRATION

if TYPE_CHECKING:
    from torch import nn

    from .data.info import Dataset
    from .run import Run

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
    if not run.has(CALIBRATION):
        return 1.0
    return float(run.read_json(CALIBRATION)["temperature"])


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


def require_val(run: Run) -> None:
    """Calibration (a temperature, conformal thresholds) is fitted on the run's validation split."""
    if not run.info.splits.get("val"):
        raise NetwrightError(f"{run.path} has no validation split to calibrate on; train it again with data.val "
                             "above 0 (e.g. --set data.val=0.15)")


def served_temperature(run: Run, onnx_folder: str | os.PathLike | None = None) -> float:
    """What a server divides a classifier's raw outputs by before the softmax: the run's
    temperature ``T``; for outputs of an ONNX file (``onnx_folder``) whose graph already divides by
    the ``T0`` its ``verify.json`` records, ``T / T0`` (1.0 unless calibrated again since export)."""
    import json
    from pathlib import Path

    t = temperature(run)  # 1.0 for a run that was never calibrated (every kind but a classifier)
    verify = Path(onnx_folder) / "verify.json" if onnx_folder is not None else None
    if verify is not None and verify.is_file():
        t /= float(json.loads(verify.read_text(encoding="utf-8")).get("temperature", 1.0))
    return t
