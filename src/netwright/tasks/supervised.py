"""Supervised learning: classification (cross-entropy) and regression (mean squared error)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.info import DataInfo
from ..metrics import classification_metrics, regression_metrics
from ..spec import TrainSpec
from .base import backward_step

if TYPE_CHECKING:
    from ..fairness.mitigation import FairnessTerm


class SupervisedTask:
    """Classification or regression with optional L1/L2 penalties and label smoothing.

    Regression targets are standardised with train-split statistics for the loss;
    metrics are reported in the target's original units.
    """

    def __init__(self, info: DataInfo, train: TrainSpec,
                 autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
                 fairness: FairnessTerm | None = None):
        self.info = info
        self.train_spec = train
        self.classification = info.task == "classification"
        self.default_monitor = "val_loss"  # smoother than accuracy on a small validation split
        self.metric_names = ["loss", "accuracy", "f1"] if self.classification else ["loss", "mae", "rmse", "r2"]
        self.autocast = autocast  # None: full precision, no context to enter on every step
        self.regularized = bool(train.l1 or train.l2)
        self.fairness = fairness
        self.loss_scale = 1.0  # set by the trainer in distributed runs (a rank's share of the global batch)
        self._penalized: list[nn.Parameter] = []

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Nothing changes between epochs."""

    def optimizers(self, model: nn.Module) -> list[torch.optim.Optimizer]:
        from ..training.optim import build_optimizer  # training/ imports tasks/: import here, no cycle

        # L1/L2 penalties apply to weight matrices and kernels, not to biases or norm scales
        self._penalized = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
        return [build_optimizer(model.parameters(), self.train_spec.optimizer)]

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.classification:
            return F.cross_entropy(out, y, label_smoothing=self.train_spec.label_smoothing)
        return F.mse_loss(out.squeeze(-1), y)

    def penalty(self) -> torch.Tensor | float:
        ts = self.train_spec
        total: torch.Tensor | float = 0.0
        if ts.l1:
            total = total + ts.l1 * sum(p.abs().sum() for p in self._penalized)
        if ts.l2:
            total = total + ts.l2 * sum(p.pow(2).sum() for p in self._penalized)
        return total

    def train_step(self, model: nn.Module, batch: tuple[Any, ...],
                   optimizers: list[torch.optim.Optimizer]) -> torch.Tensor:
        x, y = batch[0], batch[1]
        (opt,) = optimizers
        opt.zero_grad(set_to_none=True)
        if self.autocast is None:
            out = model(x)
        else:
            with self.autocast():
                out = model(x).float()
        if self.fairness is None:
            loss = self.loss(out, y)
            objective = loss
        else:
            loss, objective = self.fairness.loss(self, out, y, batch[2])
        if self.regularized:
            objective = objective + self.penalty()
        backward_step(model, opt, objective, self.loss_scale, self.train_spec.grad_clip)
        return loss.detach()

    @torch.no_grad()
    def eval_step(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        x, y = batch
        if self.autocast is None:
            return {"output": model(x), "target": y}
        with self.autocast():
            return {"output": model(x).float(), "target": y}

    def metrics(self, outputs: dict[str, torch.Tensor]) -> dict[str, Any]:
        out, y = outputs["output"], outputs["target"]
        if self.classification:
            return classification_metrics(out, y, self.info.num_classes)
        pred = self.unscale(out.squeeze(-1))
        return {"loss": float(F.mse_loss(out.squeeze(-1), y)), **regression_metrics(pred, self.unscale(y))}

    def unscale(self, y: torch.Tensor) -> torch.Tensor:
        """Standardised regression values -> original units."""
        return self.info.unscale(y.double())
