"""Neural collaborative filtering (He et al. 2017, NeuMF): user and item embeddings, combined by
an element-wise product (generalised matrix factorisation) and by an MLP, then one output."""

from __future__ import annotations

import torch
from torch import nn

from ..data.info import DataInfo
from ..errors import NetwrightError
from .common import Activation, Dropout, PosInt, mlp_layers
from .registry import register_model


def id_columns(info: DataInfo) -> tuple[int, int]:
    """Sizes of the (user, item) id columns a ratings dataset gives its model."""
    cols = info.preprocess.get("columns") or []
    ids = [c for c in cols if c["kind"] == "id"]
    if len(ids) != 2 or len(cols) != 2:
        raise NetwrightError(f"model ncf needs ratings data with a user and an item id column (movielens_100k, "
                             f"ratings_csv); '{info.name}' has none")
    return len(ids[0]["categories"]), len(ids[1]["categories"])


class NCF(nn.Module):
    def __init__(self, info: DataInfo, factors: int, embed_dim: int, hidden: list[int], activation: str,
                 dropout: float):
        super().__init__()
        users, items = id_columns(info)
        self.user_gmf, self.item_gmf = nn.Embedding(users, factors), nn.Embedding(items, factors)
        self.user_mlp, self.item_mlp = nn.Embedding(users, embed_dim), nn.Embedding(items, embed_dim)
        self.user_bias, self.item_bias = nn.Embedding(users, 1), nn.Embedding(items, 1)
        for e in (self.user_gmf, self.item_gmf, self.user_mlp, self.item_mlp):
            nn.init.normal_(e.weight, std=0.05)
        for e in (self.user_bias, self.item_bias):
            nn.init.zeros_(e.weight)
        *body, last = hidden or [embed_dim]
        self.mlp = nn.Sequential(mlp_layers(2 * embed_dim, body, last, activation, dropout), nn.ReLU())
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.out = nn.Linear(factors + last, info.num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, i = x[:, 0].long(), x[:, 1].long()  # (B, 2): user and item indices
        gmf = self.user_gmf(u) * self.item_gmf(i)
        deep = self.mlp(torch.cat([self.user_mlp(u), self.item_mlp(i)], dim=1))
        return self.out(self.dropout(torch.cat([gmf, deep], dim=1))) + self.user_bias(u) + self.item_bias(i)


@register_model("ncf", family="recommender", data="ratings")
def ncf(
    info: DataInfo,
    factors: PosInt = 32,
    embed_dim: PosInt = 32,
    hidden: list[PosInt] = [64, 32],
    activation: Activation = "relu",
    dropout: Dropout = 0.2,
) -> nn.Module:
    """Neural collaborative filtering (NeuMF) over (user, item) pairs: a rating (or any score).

    Args:
        factors: width of the matrix-factorisation embeddings (their element-wise product).
        embed_dim: width of the MLP path's user and item embeddings.
        hidden: widths of the MLP path (its last width joins the product).
        activation: non-linearity in the MLP path.
        dropout: in the MLP path and before the output.
    """
    return NCF(info, factors, embed_dim, hidden, activation, dropout)
