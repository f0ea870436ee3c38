"""In-training mitigation: reweighing (pre-processing) and a differentiable gap penalty
(in-processing), as terms of the supervised task's loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..data.info import Dataset
from ..errors import NetwrightError
from .groups import group_index, group_labels, resolve, reweighing


@dataclass
class FairnessTerm:
    """What the loss needs: the mitigation, the positive class, the penalty's kind and weight."""

    mitigation: str
    positive: int
    constraint: str = "demographic_parity"
    weight: float = 0.0

    def loss(self, task: Any, out: torch.Tensor, y: torch.Tensor,
             extras: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(the plain loss, for logging; the objective to minimise)."""
        ls = task.train_spec.label_smoothing
        if self.mitigation == "reweighing":
            per = F.cross_entropy(out, y, label_smoothing=ls, reduction="none")
            w = extras["weight"]
            return per.mean().detach(), (per * w).sum() / w.sum()
        loss = F.cross_entropy(out, y, label_smoothing=ls)
        p = torch.softmax(out, dim=1)[:, self.positive]
        return loss, loss + self.weight * self.gap(p, y == self.positive, extras["group"])

    def gap(self, p: torch.Tensor, positive: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """Largest difference between groups of the mean positive probability (demographic
        parity), or of it within each true label (equalized odds); groups absent from the
        batch are skipped."""
        if self.constraint == "demographic_parity":
            return _spread(p, group)
        return torch.stack([_spread(p[positive], group[positive]), _spread(p[~positive], group[~positive])]).max()


def _spread(p: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    k = int(group.max()) + 1 if len(group) else 1
    count = torch.bincount(group, minlength=k).to(p.dtype)
    mean = torch.zeros(k, dtype=p.dtype, device=p.device).index_add(0, group, p) / count.clamp(min=1)
    present = count > 0
    if present.sum() < 2:
        return p.sum() * 0.0
    return mean[present].max() - mean[present].min()


def training_terms(spec: Any, data: Dataset) -> tuple[FairnessTerm | None, dict[str, torch.Tensor]]:
    """The loss term and per-example tensors for ``spec.fairness.mitigation`` (none for
    ``none`` and for post-processing ``thresholds``)."""
    fair = spec.fairness
    if fair.mitigation not in ("reweighing", "penalty"):
        return None, {}
    sensitive, positive = resolve(data.info, fair)
    g = group_labels(data.train.groups, sensitive)
    y = data.train.y.numpy()
    if fair.mitigation == "reweighing":
        return FairnessTerm("reweighing", positive), {"weight": torch.from_numpy(reweighing(y == positive, g))}
    if spec.train.augment.mixup:
        raise NetwrightError("fairness.mitigation: penalty cannot be combined with train.augment.mixup")
    codes, _ = group_index(g)
    return (FairnessTerm("penalty", positive, fair.penalty.constraint, fair.penalty.weight),
            {"group": torch.from_numpy(codes)})


def check_groups(data: Dataset, fair: Any) -> None:
    """Fail early when the spec names sensitive columns the data does not have."""
    if fair.mitigation != "none" or fair.sensitive:
        resolve(data.info, fair)


__all__ = ["FairnessTerm", "check_groups", "training_terms"]
