"""Policy network: an observation -> logits over discrete actions (a stochastic policy)."""

from __future__ import annotations

from torch import nn

from ..data.info import DataInfo
from ..errors import NetwrightError
from .common import Activation, PosInt, mlp_layers
from .registry import register_model


@register_model("policy", family="control", task="control")
def policy(info: DataInfo, hidden: list[PosInt] = [64, 64], activation: Activation = "tanh") -> nn.Module:
    """Feed-forward policy for a gymnasium environment's vector observations and discrete
    actions, trained by policy gradient on the episodes it plays.

    Args:
        hidden: widths of the hidden layers.
        activation: non-linearity between them.
    """
    if info.task != "control":
        raise NetwrightError(f"model policy learns from episodes of an environment (data.name: gym); "
                             f"'{info.name}' is {info.task} data")
    return mlp_layers(info.input_shape[0], hidden, info.num_outputs, activation, 0.0)
