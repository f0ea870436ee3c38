"""Pieces shared by the model families: activations, normalisation, heads."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from ..errors import NetwrightError

PosInt = Annotated[int, Field(ge=1)]
Dropout = Annotated[float, Field(ge=0.0, lt=1.0)]
Activation = Literal["sigmoid", "tanh", "relu", "leaky_relu", "gelu", "silu"]
Norm = Literal["none", "batch", "layer"]
Ngrams = Annotated[int, Field(ge=0, le=5)]
Buckets = Annotated[int, Field(ge=1, le=1 << 24)]

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


class NgramBag(nn.Module):
    """A wide, linear path for token inputs: one learned score per class for every token n-gram
    (n = 1..``n``) in the text, summed (fastText's bag of n-grams, the "wide" half of Wide & Deep).
    Unigrams get a row each; longer n-grams are hashed into ``buckets`` rows. Padding (id 0) and
    n-grams that touch it add nothing, so an all-padding input scores zero. Starts at zero."""

    PRIME = 1_000_003

    def __init__(self, vocab_size: int, n: int, buckets: int, outputs: int):
        super().__init__()
        self.vocab_size, self.n, self.buckets = vocab_size, n, buckets
        self.weight = nn.Parameter(torch.zeros(vocab_size + (buckets if n > 1 else 0), outputs))

    def grams(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per n: (row ids (B, L-n+1), mask of n-grams free of padding)."""
        real = x != 0
        out = [(x, real)]
        h, mask = x, real
        for k in range(2, self.n + 1):
            h = h[:, :-1] * self.PRIME + x[:, k - 1:]
            mask = mask[:, :-1] & real[:, k - 1:]
            out.append((self.vocab_size + h % self.buckets, mask))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum((self.weight[ids] * mask.unsqueeze(-1).to(self.weight.dtype)).sum(1)
                   for ids, mask in self.grams(x))  # (B, K)

    def token_shares(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Each n-gram's score for ``target`` split evenly over its n tokens: (B, L), summing to
        this path's output (its exact attribution against an all-padding baseline)."""
        shares = torch.zeros(x.shape, dtype=self.weight.dtype, device=x.device)
        for k, (ids, mask) in enumerate(self.grams(x), start=1):
            score = self.weight[ids, target[:, None].expand_as(ids)] * mask.to(self.weight.dtype) / k
            for offset in range(k):
                shares[:, offset: offset + score.shape[1]] += score
        return shares


def wide_path(info, ngrams: int, buckets: int) -> NgramBag | None:
    """The optional n-gram path of a text classifier (``model.ngrams`` > 0)."""
    if not ngrams:
        return None
    if info.modality != "tokens":
        raise NetwrightError(f"model.ngrams adds a bag of token n-grams; this data is {info.modality}, "
                             "set model.ngrams: 0")
    return NgramBag(len(info.vocab), ngrams, buckets, info.num_outputs)
