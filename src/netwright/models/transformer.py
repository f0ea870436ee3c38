"""Transformer encoder: inputs as tokens (image patches, sequence steps, tabular features, text)."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from ..data.info import DataInfo
from ..errors import NetwrightError
from .common import ACTIVATIONS, Activation, Buckets, Dropout, Ngrams, PosInt, check_heads, mlp_layers, wide_path
from .registry import register_model


class FeatureTokens(nn.Module):
    """Tabular row -> one token per feature: ``x_f * w_f + b_f``."""

    def __init__(self, features: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(features, dim) / math.sqrt(dim))
        self.bias = nn.Parameter(torch.zeros(features, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(-1) * self.weight + self.bias  # (B, F) -> (B, F, D)


def sinusoidal(length: int, dim: int) -> torch.Tensor:
    """Fixed sine/cosine position codes (Vaswani et al. 2017), ``(1, length, dim)``."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return pe[None]


def auto_patch(extent: tuple[int, ...], max_tokens: int) -> int:
    """Smallest patch size dividing every axis of ``extent`` that leaves at most ``max_tokens`` patches
    (the largest common divisor when none does)."""
    sizes = [p for p in range(1, max(extent) + 1) if all(e % p == 0 for e in extent)]
    return next((p for p in sizes if math.prod(e // p for e in extent) <= max_tokens), sizes[-1])


class TransformerClassifier(nn.Module):
    def __init__(self, info: DataInfo, d_model: int, heads: int, layers: int, ff_dim: int, dropout: float,
                 activation: str, positional: str, pool: str, patch_size: int | None, hidden: list[int],
                 ngrams: int = 0, ngram_buckets: int = 1):
        super().__init__()
        self.modality = info.modality
        self.pool = pool
        self.padded = info.modality == "tokens" and bool(info.preprocess.get("pad"))  # id 0 pads short texts
        shape = info.input_shape
        if info.modality == "image":
            c, h, w = shape
            p = patch_size or auto_patch((h, w), 16)
            if h % p or w % p:
                raise NetwrightError(f"model.patch_size: {p} does not divide the {h}x{w} image")
            self.tokenize = nn.Conv2d(c, d_model, p, stride=p)
            n_tokens = (h // p) * (w // p)
        elif info.modality == "sequence":
            c, length = shape
            p = patch_size or auto_patch((length,), 64)
            if length % p:
                raise NetwrightError(f"model.patch_size: {p} does not divide the sequence length {length}")
            self.tokenize = nn.Conv1d(c, d_model, p, stride=p)
            n_tokens = length // p
        elif info.modality == "tokens":
            self.tokenize = nn.Embedding(len(info.vocab), d_model)
            n_tokens = shape[0]
        else:
            self.tokenize = FeatureTokens(shape[0], d_model)
            n_tokens = shape[0]
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model)) if pool == "cls" else None
        n_tokens += pool == "cls"
        self.pos = None  # tabular features need no position code: each has its own embedding
        self.register_buffer("pos_fixed", None, persistent=False)
        if info.modality != "tabular" and positional == "learned":
            self.pos = nn.Parameter(torch.randn(1, n_tokens, d_model) * 0.02)
        elif info.modality != "tabular":
            self.pos_fixed = sinusoidal(n_tokens, d_model)
        act = activation if activation in ("relu", "gelu") else ACTIVATIONS[activation]()
        layer = nn.TransformerEncoderLayer(d_model, heads, ff_dim, dropout, act, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)
        self.head = mlp_layers(d_model, hidden, info.num_outputs, activation, dropout)
        self.wide = wide_path(info, ngrams, ngram_buckets)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Model input -> (B, N, D) token embeddings with positions."""
        t = self.tokenize(x)
        if self.modality in ("image", "sequence"):
            t = t.flatten(2).transpose(1, 2)  # (B, D, ...) -> (B, N, D)
        if self.cls is not None:
            t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], dim=1)  # shape[0]: keeps the batch dynamic on export
        pos = self.pos if self.pos is not None else self.pos_fixed
        return t if pos is None else t + pos

    def padding(self, x: torch.Tensor) -> torch.Tensor | None:
        """Key padding mask (B, N), True at padding tokens (text only), so attention and the mean
        pool skip them; a text that is all padding keeps every token."""
        if not self.padded:
            return None
        mask = x == 0
        mask = mask & ~mask.all(1, keepdim=True)
        if self.cls is not None:
            mask = torch.cat([torch.zeros_like(mask[:, :1]), mask], dim=1)
        return mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = self.padding(x)
        z = self.encoder(self.tokens(x), src_key_padding_mask=mask)  # (B, N, D)
        if self.cls is not None:
            feats = z[:, 0]
        elif mask is None:
            feats = z.mean(dim=1)
        else:
            keep = (~mask).unsqueeze(-1).to(z.dtype)
            feats = (z * keep).sum(1) / keep.sum(1)
        out = self.head(feats)  # (B, K)
        return out if self.wide is None else out + self.wide(x)


@register_model("transformer", family="transformer")
def transformer(
    info: DataInfo,
    d_model: PosInt = 64,
    heads: PosInt = 4,
    layers: PosInt = 2,
    ff_dim: PosInt = 128,
    dropout: Dropout = 0.1,
    activation: Activation = "gelu",
    positional: Literal["learned", "sinusoidal"] = "learned",
    pool: Literal["cls", "mean"] = "cls",
    patch_size: PosInt | None = None,
    hidden: list[PosInt] = [],
    ngrams: Ngrams = 0,
    ngram_buckets: Buckets = 262_144,
) -> nn.Module:
    """Transformer encoder (pre-norm) classifier/regressor over tokens made from the input.

    Images become patches, sequences become steps (or patches of steps), tabular rows one token per
    feature, text one embedding per token (padding masked); a position code is added (not for tabular features).

    Args:
        d_model: token width.
        heads: attention heads (must divide d_model).
        layers: encoder layers.
        ff_dim: width of each layer's feed-forward block.
        dropout: dropout in attention, feed-forward and head.
        activation: feed-forward non-linearity.
        positional: learned or fixed sinusoidal position codes.
        pool: read the output from a [CLS] token or the mean over tokens.
        patch_size: image/sequence patch size; default: the smallest giving at most 16 image / 64 sequence tokens.
        hidden: widths of hidden layers in the head.
        ngrams: text only: add a wide linear path over the text's token n-grams up to this n
            (fastText-style bag of n-grams, summed with the encoder's output); 0: none.
        ngram_buckets: hashed rows shared by the n-grams longer than one token.
    """
    check_heads(d_model, heads)
    return TransformerClassifier(info, d_model, heads, layers, ff_dim, dropout, activation, positional, pool,
                                 patch_size, hidden, ngrams, ngram_buckets)
