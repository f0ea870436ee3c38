"""Convolutional network, 2-D for images and 1-D for sequences (tabular rows and tokens as 1-D too)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ..data.info import DataInfo
from ..errors import NetwrightError
from .common import Activation, Dropout, Norm, PosInt, make_activation, make_norm, mlp_layers
from .registry import register_model


class CNN(nn.Module):
    def __init__(self, info: DataInfo, channels: list[int], kernel_size: int, convs_per_block: int, pool: str,
                 hidden: list[int], activation: str, dropout: float, norm: str, head: str, embed_dim: int):
        super().__init__()
        self.modality = info.modality
        self.embed = nn.Embedding(len(info.vocab), embed_dim) if info.modality == "tokens" else None
        if info.modality == "image":
            dims, in_ch, extent = 2, info.input_shape[0], list(info.input_shape[1:])
        elif info.modality == "sequence":
            dims, in_ch, extent = 1, info.input_shape[0], [info.input_shape[1]]
        elif info.modality == "tokens":
            dims, in_ch, extent = 1, embed_dim, [info.input_shape[0]]
        else:  # tabular: one channel, features along the length axis
            dims, in_ch, extent = 1, 1, [info.input_shape[0]]
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        pool_cls = {"max": (nn.MaxPool1d, nn.MaxPool2d), "avg": (nn.AvgPool1d, nn.AvgPool2d)}.get(pool)
        blocks: list[nn.Module] = []
        for out_ch in channels:
            for _ in range(convs_per_block):
                blocks += [conv(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=norm != "batch"),
                           make_norm(norm, out_ch, dims), make_activation(activation)]
                in_ch = out_ch
            if pool_cls is not None and min(extent) >= 2:
                blocks.append(pool_cls[dims - 1](2))
                extent = [e // 2 for e in extent]
        self.features = nn.Sequential(*blocks)
        if head == "flatten":
            self.pool = nn.Flatten(1)
            width = in_ch * int(torch.tensor(extent).prod())
        else:
            adaptive = {"avg": (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d),
                        "max": (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)}[head][dims - 1]
            self.pool = nn.Sequential(adaptive(1), nn.Flatten(1))
            width = in_ch
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.head = mlp_layers(width, hidden, info.num_outputs, activation, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            x = self.embed(x).transpose(1, 2)  # (B, L) -> (B, E, L)
        elif self.modality == "tabular":
            x = x.unsqueeze(1)  # (B, F) -> (B, 1, F)
        x = self.features(x)  # (B, C, H, W) or (B, C, L)
        return self.head(self.dropout(self.pool(x)))  # (B, K)


@register_model("cnn", family="convolutional")
def cnn(
    info: DataInfo,
    channels: list[PosInt] = [32, 64],
    kernel_size: PosInt = 3,
    convs_per_block: PosInt = 1,
    pool: Literal["max", "avg", "none"] = "max",
    hidden: list[PosInt] = [128],
    activation: Activation = "relu",
    dropout: Dropout = 0.0,
    norm: Norm = "batch",
    head: Literal["flatten", "avg", "max"] = "flatten",
    embed_dim: PosInt = 16,
) -> nn.Module:
    """Convolutional network: blocks of conv -> norm -> activation (+ pooling), then a dense head.

    Args:
        channels: output channels of each block.
        kernel_size: odd kernel size ('same' padding).
        convs_per_block: convolutions before each pooling step.
        pool: down-sampling by 2 after each block (skipped once the map is 1 wide).
        hidden: widths of the dense head's hidden layers.
        activation: non-linearity after each convolution and hidden layer.
        dropout: dropout before and inside the dense head.
        norm: batch, layer (one group) or no normalisation after each convolution.
        head: flatten the final feature map, or global average/max pooling.
        embed_dim: embedding width for token inputs.
    """
    if kernel_size % 2 == 0:
        raise NetwrightError(f"model.kernel_size: must be odd for 'same' padding, got {kernel_size}")
    return CNN(info, channels, kernel_size, convs_per_block, pool, hidden, activation, dropout, norm, head, embed_dim)
