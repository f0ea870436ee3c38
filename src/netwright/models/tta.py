"""Test-time augmentation (``train.tta``): in eval mode the model's output is the mean of its
outputs for the input and each view of it (``flip``: mirrored along the last axis; ``shift``:
moved one step or pixel each way along the last axis, the uncovered edge zero: the training
mean after normalisation). Attached as a forward hook, so the weights and their names stay the
model's own and every use of a loaded run (evaluate, predict, serve, explain, export) sees it;
in training mode the model is left alone."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def _shifted(x: torch.Tensor, step: int) -> torch.Tensor:
    edge = torch.zeros_like(x[..., :1])
    return torch.cat([edge, x[..., :-1]], -1) if step > 0 else torch.cat([x[..., 1:], edge], -1)


VIEWS: dict[str, list[Callable[[torch.Tensor], torch.Tensor]]] = {
    "flip": [lambda x: x.flip(-1)],
    "shift": [lambda x: _shifted(x, 1), lambda x: _shifted(x, -1)],
}


def add_tta(model: nn.Module, transforms: list[str]) -> nn.Module:
    """``model`` whose eval-mode output is the mean of its outputs for the input and each of its
    ``VIEWS`` that ``transforms`` names (a no-op without transforms)."""
    if not transforms:
        return model
    inside = [False]  # the views' own forward passes are not augmented again

    def average(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        if module.training or inside[0] or not torch.is_tensor(output):
            return output
        inside[0] = True
        try:
            outs = [output] + [module(view(args[0]), *args[1:]) for t in transforms for view in VIEWS[t]]
        finally:
            inside[0] = False
        return torch.stack(outs).mean(0)

    model.register_forward_hook(average)
    return model
