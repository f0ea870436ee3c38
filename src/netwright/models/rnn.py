"""Recurrent network: a vanilla RNN, LSTM or GRU over the input sequence."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ..data.info import DataInfo
from .common import Activation, Buckets, Dropout, Ngrams, Norm, PosInt, make_norm, mlp_layers, wide_path
from .registry import register_model


class RNN(nn.Module):
    def __init__(self, info: DataInfo, cell: str, hidden_size: int, num_layers: int, bidirectional: bool,
                 nonlinearity: str, pool: str, hidden: list[int], activation: str, dropout: float, norm: str,
                 embed_dim: int, ngrams: int = 0, ngram_buckets: int = 1):
        super().__init__()
        self.modality = info.modality
        self.pool = pool
        self.embed = nn.Embedding(len(info.vocab), embed_dim) if info.modality == "tokens" else None
        shape = info.input_shape
        steps_features = {
            "image": shape[0] * shape[2] if len(shape) == 3 else 1,  # one step per image row
            "sequence": shape[0],
            "tabular": 1,
            "tokens": embed_dim,
        }[info.modality]
        kwargs = dict(input_size=steps_features, hidden_size=hidden_size, num_layers=num_layers,
                      batch_first=True, bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        if cell == "rnn":
            kwargs["nonlinearity"] = nonlinearity
        self.rnn = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell](**kwargs)
        width = hidden_size * (2 if bidirectional else 1)
        if pool == "flatten":
            steps = {"image": shape[1] if len(shape) == 3 else 1, "sequence": shape[-1], "tabular": shape[0],
                     "tokens": shape[0]}[info.modality]
            width *= steps
        self.norm = make_norm(norm, width)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.head = mlp_layers(width, hidden, info.num_outputs, activation, dropout)
        self.wide = wide_path(info, ngrams, ngram_buckets)

    def as_steps(self, x: torch.Tensor) -> torch.Tensor:
        """Model input -> (B, T, F)."""
        if self.embed is not None:
            return self.embed(x)  # (B, L) -> (B, L, E)
        if self.modality == "image":
            return x.permute(0, 2, 1, 3).flatten(2)  # (B, C, H, W) -> (B, H, C*W)
        if self.modality == "sequence":
            return x.transpose(1, 2)  # (B, C, L) -> (B, L, C)
        return x.unsqueeze(-1)  # tabular (B, F) -> (B, F, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, h = self.rnn(self.as_steps(x))  # out: (B, T, D*H)
        if self.pool == "last":
            h = h[0] if isinstance(h, tuple) else h  # LSTM returns (h, c); h: (layers*D, B, H)
            feats = h[-2:].transpose(0, 1).flatten(1) if self.rnn.bidirectional else h[-1]
        elif self.pool == "mean":
            feats = out.mean(dim=1)
        elif self.pool == "flatten":
            feats = out.flatten(1)  # (B, T * D * H): every step's output
        else:
            feats = out.amax(dim=1)
        out = self.head(self.dropout(self.norm(feats)))  # (B, K)
        return out if self.wide is None else out + self.wide(x)


@register_model("rnn", family="recurrent")
def rnn(
    info: DataInfo,
    cell: Literal["rnn", "lstm", "gru"] = "gru",
    hidden_size: PosInt = 64,
    num_layers: PosInt = 1,
    bidirectional: bool = False,
    nonlinearity: Literal["tanh", "relu"] = "tanh",
    pool: Literal["last", "mean", "max", "flatten"] = "last",
    hidden: list[PosInt] = [],
    activation: Activation = "relu",
    dropout: Dropout = 0.0,
    norm: Norm = "none",
    embed_dim: PosInt = 16,
    ngrams: Ngrams = 0,
    ngram_buckets: Buckets = 262_144,
) -> nn.Module:
    """Recurrent network over the input as a sequence (image rows, sequence steps, tabular features, tokens).

    Args:
        cell: rnn (Elman), lstm or gru.
        hidden_size: width of the recurrent state.
        num_layers: stacked recurrent layers.
        bidirectional: read the sequence both ways.
        nonlinearity: recurrence non-linearity of the plain rnn cell.
        pool: summarise the sequence by the last state, the mean or max over steps, or keep every
            step's output (flatten).
        hidden: widths of hidden layers in the dense head.
        activation: non-linearity in the dense head.
        dropout: between recurrent layers and in the head.
        norm: none, batch or layer normalisation of the pooled state.
        embed_dim: embedding width for token inputs.
        ngrams: text only: add a wide linear path over the text's token n-grams up to this n
            (fastText-style bag of n-grams, summed with the recurrent path's output); 0: none.
        ngram_buckets: hashed rows shared by the n-grams longer than one token.
    """
    return RNN(info, cell, hidden_size, num_layers, bidirectional, nonlinearity, pool, hidden, activation,
               dropout, norm, embed_dim, ngrams, ngram_buckets)
