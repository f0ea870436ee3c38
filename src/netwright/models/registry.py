"""The model registry: name -> builder ``fn(info: DataInfo, **hyper_parameters) -> nn.Module``."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..data.info import DataInfo
from ..registry import Registry

MODELS = Registry("model", skip=1)
register_model = MODELS.register


def build_model(name: str, info: DataInfo, **params: Any) -> nn.Module:
    """Build the registered model ``name`` for ``info``; unknown parameters are errors."""
    resolved, problems = MODELS.validate(name, params, "model")
    if problems:
        from ..errors import SpecError

        raise SpecError(problems)
    model = MODELS.get(name).fn(info, **resolved)
    model._netwright_model = {"name": name, **resolved}  # netwright.train(model=...) records how to rebuild it
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
