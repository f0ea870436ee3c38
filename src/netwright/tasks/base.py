"""What a training step means; the trainer owns the loop, a task owns the step."""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn


class Task(Protocol):
    """The contract between the trainer and a kind of learning problem."""

    #: metric that picks the best epoch when ``train.monitor`` is ``auto`` (e.g. ``val_accuracy``)
    default_monitor: str
    #: names of the metrics :meth:`metrics` returns
    metric_names: list[str]

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Called before each epoch (schedules inside the task, such as decaying noise)."""

    def optimizers(self, model: nn.Module) -> list[torch.optim.Optimizer]:
        """One optimizer, or one per network for adversarial training."""

    def train_step(self, model: nn.Module, batch: tuple[torch.Tensor, ...],
                   optimizers: list[torch.optim.Optimizer]) -> torch.Tensor | dict[str, torch.Tensor]:
        """Forward, loss, backward and optimizer step(s); returns the (detached) loss, or one
        loss per network (logged as ``train_<name>``; their sum as ``train_loss``)."""

    def eval_step(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        """Outputs of one batch kept for :meth:`metrics` (no gradients)."""

    def metrics(self, outputs: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Metrics from the concatenated outputs of :meth:`eval_step`."""


def backward_step(model: nn.Module, optimizer: torch.optim.Optimizer, objective: torch.Tensor, loss_scale: float,
                  grad_clip: float | None) -> None:
    """Backward (scaled by this process's share of the global batch), optional gradient-norm
    clipping, optimizer step."""
    (objective * loss_scale if loss_scale != 1.0 else objective).backward()
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()


class OneNetworkTask:
    """A task that trains one network with one optimizer: a step computes ``objective(model,
    batch)``, then backward, clipping and the optimizer step. Subclasses give the objective."""

    default_monitor = "val_loss"

    def __init__(self, info: Any, train: Any):
        self.info, self.train_spec = info, train
        self.loss_scale = 1.0  # set by the trainer in distributed runs (a rank's share of the global batch)

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Nothing changes between epochs."""

    def optimizers(self, model: nn.Module) -> list[torch.optim.Optimizer]:
        from ..training.optim import build_optimizer  # training/ imports tasks/: import here, no cycle

        return [build_optimizer(model.parameters(), self.train_spec.optimizer)]

    def objective(self, model: nn.Module, batch: tuple[Any, ...]) -> torch.Tensor:
        raise NotImplementedError

    def train_step(self, model: nn.Module, batch: tuple[Any, ...],
                   optimizers: list[torch.optim.Optimizer]) -> torch.Tensor:
        (opt,) = optimizers
        opt.zero_grad(set_to_none=True)
        loss = self.objective(model, batch)
        backward_step(model, opt, loss, self.loss_scale, self.train_spec.grad_clip)
        return loss.detach()
