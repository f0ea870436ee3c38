"""Pieces shared by the model families: activations, normalisation, heads."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from torch import nn

from ..errors import NetwrightError

PosInt = Annotated[int, Field(ge=1)]
Dropout = Annotated[float, Field(ge=0.0, lt=1.0)]
Activation = Literal["sigmoid", "tanh", "relu", "leaky_relu", "gelu", "silu"]
Norm = Literal["none", "batch", "layer"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def make_activation(name: str) -> nn.Module:
    return ACTIVATIONS[name]()


def make_norm(kind: str, features: int, dims: int = 0) -> nn.Module:
    """A normalisation layer for ``features`` channels; ``dims`` is 0 (vectors), 1 or 2 (feature maps)."""
    if kind == "none":
        return nn.Identity()
    if kind == "batch":
        return (nn.BatchNorm1d, nn.BatchNorm1d, nn.BatchNorm2d)[dims](features)
    return nn.LayerNorm(features) if dims == 0 else nn.GroupNorm(1, features)


def mlp_layers(in_features: int, hidden: list[int], out_features: int, activation: str, dropout: float,
               norm: str = "none") -> nn.Sequential:
    """Linear -> norm -> activation -> dropout per hidden width, then a linear output layer."""
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), make_norm(norm, h), make_activation(activation)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


def check_heads(d_model: int, heads: int) -> None:
    """Attention heads must split the token width evenly."""
    if d_model % heads:
        raise NetwrightError(f"model.heads: {heads} does not divide model.d_model {d_model}")
