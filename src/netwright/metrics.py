"""Metrics computed from model outputs (tensors in, floats out).

Cross-checked against scikit-learn in the tests; written in torch so the trainer can
score the validation split every epoch without leaving the tensor world.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

LOWER_IS_BETTER = {"loss", "mae", "rmse", "mse", "ece", "fid"}


def lower_is_better(metric: str) -> bool:
    """Whether smaller values of ``metric`` (``val_loss``, ``accuracy``...) are better."""
    for prefix in ("val_", "train_", "test_"):
        metric = metric.removeprefix(prefix)
    return metric in LOWER_IS_BETTER


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``C[i, j]`` = number of examples of true class ``i`` predicted as ``j``."""
    idx = target.long() * num_classes + pred.long()
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def macro_f1(cm: torch.Tensor) -> float:
    """Unweighted mean of per-class F1 over classes present in the targets or the predictions."""
    c = cm.numpy().astype(np.float64)  # a K x K table: numpy is cheaper than tensor ops here
    denom = c.sum(0) + c.sum(1)
    present = denom > 0
    return float((2 * np.diag(c)[present] / denom[present]).mean()) if present.any() else 0.0


def expected_calibration_error(probs: torch.Tensor, target: torch.Tensor, bins: int = 15) -> tuple[float, list[dict]]:
    """ECE of the top-class confidence over equal-width bins, and the reliability table."""
    conf, pred = probs.max(dim=1)
    correct = (pred == target).double()
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    which = torch.bucketize(conf.double(), edges[1:-1])  # bin i holds (edges[i], edges[i+1]]
    ece, table = 0.0, []
    n = len(target)
    for b in range(bins):
        mask = which == b
        count = int(mask.sum())
        if count:
            acc, mean_conf = float(correct[mask].mean()), float(conf[mask].double().mean())
            ece += count / n * abs(acc - mean_conf)
        else:
            acc = mean_conf = None
        table.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": count,
                      "accuracy": acc, "confidence": mean_conf})
    return ece, table


def classification_metrics(logits: torch.Tensor, target: torch.Tensor, num_classes: int) -> dict[str, float]:
    """Loss (cross-entropy), accuracy and macro F1."""
    logits = logits.float()
    pred = logits.argmax(dim=1)
    cm = confusion_matrix(pred, target, num_classes)
    return {
        "loss": float(F.cross_entropy(logits.detach(), target)),
        "accuracy": float((pred == target).double().mean()),
        "f1": macro_f1(cm),
    }


def regression_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """MAE, RMSE and R² in the target's original units."""
    pred, target = pred.double(), target.double()
    err = pred - target
    ss_res = float((err**2).sum())
    ss_tot = float(((target - target.mean()) ** 2).sum())
    return {
        "mae": float(err.abs().mean()),
        "rmse": float(err.pow(2).mean().sqrt()),
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0,
    }


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (Heusel et al. 2017):
    ``|mu_a - mu_b|^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2))``."""
    import warnings

    from scipy import linalg

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rank-deficient covariances (ReLU features) are expected
        root = linalg.sqrtm(ca @ cb)
        if not np.isfinite(root).all():  # nudge the diagonals, as the reference FID code does
            eps = 1e-6 * np.eye(len(ca))
            root = linalg.sqrtm((ca + eps) @ (cb + eps))
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * np.real(root)))
