"""Attention rollout (Abnar & Zuidema 2020) for the Transformer encoder."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..data.info import DataInfo


@torch.no_grad()
def attention_maps(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Head-averaged attention of every encoder layer, ``(B, N, N)`` each.

    Runs the pre-norm layers step by step as ``nn.TransformerEncoderLayer`` does, asking
    the attention for its weights (the layer itself discards them).
    """
    h = model.tokens(x)
    mask = model.padding(x)
    maps = []
    for layer in model.encoder.layers:
        y = layer.norm1(h)
        out, weights = layer.self_attn(y, y, y, key_padding_mask=mask, need_weights=True, average_attn_weights=True)
        maps.append(weights)
        h = h + layer.dropout1(out)
        h = h + layer.dropout2(layer.linear2(layer.dropout(layer.activation(layer.linear1(layer.norm2(h))))))
    return maps


def attention_rollout(model: nn.Module, x: torch.Tensor, info: DataInfo) -> torch.Tensor:
    """Relevance of each input position, shaped like the input (image patches spread over pixels)."""
    was = model.training
    model.eval()
    maps = attention_maps(model, x)
    model.train(was)
    n = maps[0].shape[-1]
    eye = torch.eye(n).expand_as(maps[0])
    rollout = eye
    for a in maps:
        a = 0.5 * a + 0.5 * eye  # the residual connection
        a = a / a.sum(-1, keepdim=True)
        rollout = a @ rollout
    if model.cls is not None:
        relevance = rollout[:, 0, 1:]  # what the [CLS] token attends to, through all layers
    else:
        relevance = rollout.mean(1)
    return _to_input(relevance, x, info)


def _to_input(relevance: torch.Tensor, x: torch.Tensor, info: DataInfo) -> torch.Tensor:
    """Token relevance ``(B, N)`` -> input shape."""
    if info.modality == "image":
        c, h, w = info.input_shape
        side = int(math.sqrt(relevance.shape[1] * h / w))
        grid = relevance.reshape(len(x), 1, side, relevance.shape[1] // side)
        return F.interpolate(grid, size=(h, w), mode="nearest").expand(-1, c, -1, -1).contiguous()
    if info.modality == "sequence":
        c, length = info.input_shape
        grid = relevance.reshape(len(x), 1, -1)
        return F.interpolate(grid, size=length, mode="nearest").expand(-1, c, -1).contiguous()
    return relevance  # tabular features and text tokens: one token each
