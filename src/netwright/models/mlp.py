"""Feed-forward network (multi-layer perceptron); ``hidden: []`` is logistic/linear regression."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..data.info import DataInfo
from ..data.layout import column_blocks
from .common import Activation, Dropout, Norm, PosInt, mlp_layers
from .registry import register_model


class MLP(nn.Module):
    def __init__(self, info: DataInfo, hidden: list[int], activation: str, dropout: float, norm: str,
                 embed_dim: int):
        super().__init__()
        self.embed = nn.Embedding(len(info.vocab), embed_dim) if info.modality == "tokens" else None
        width = math.prod(info.input_shape) * (embed_dim if self.embed is not None else 1)
        # a table's index columns (categories too many for one-hot): a learnt vector per category
        ids = [(at.start, len(col["categories"])) for col, at in column_blocks(info.preprocess.get("columns", []))
               if col["kind"] == "id"] if info.modality == "tabular" else []
        self.id_at = [i for i, _ in ids]
        self.id_embed = nn.ModuleList(nn.Embedding(k, min(embed_dim, k)) for _, k in ids)
        with torch.no_grad():  # '(other)', a category first seen after training, sits at the origin
            for e in self.id_embed:
                e.weight[-1].zero_()
        self.plain_at = [i for i in range(math.prod(info.input_shape)) if i not in set(self.id_at)] if ids else []
        width += sum(e.embedding_dim - 1 for e in self.id_embed)
        self.layers = mlp_layers(width, hidden, info.num_outputs, activation, dropout, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            x = self.embed(x)  # (B, L) -> (B, L, E)
        if self.id_at:  # (B, F) -> (B, F - ids + sum of their widths)
            x = torch.cat([x[:, self.plain_at]] + [e(x[:, i].long()) for i, e in zip(self.id_at, self.id_embed)], 1)
        return self.layers(x.flatten(1))  # (B, F) -> (B, K)


@register_model("mlp", family="feed-forward")
def mlp(
    info: DataInfo,
    hidden: list[PosInt] = [128, 64],
    activation: Activation = "relu",
    dropout: Dropout = 0.0,
    norm: Norm = "none",
    embed_dim: PosInt = 16,
) -> nn.Module:
    """Feed-forward network: inputs flattened, then Linear -> norm -> activation -> dropout per hidden layer.

    Args:
        hidden: widths of the hidden layers; ``[]`` gives logistic (or linear) regression.
        activation: non-linearity between layers.
        dropout: dropout probability after each hidden layer.
        norm: none, batch or layer normalisation after each hidden linear layer.
        embed_dim: embedding width for token inputs, and at most for a table's index columns
            (categorical columns with more categories than the data's ``embed_above``).
    """
    return MLP(info, hidden, activation, dropout, norm, embed_dim)
