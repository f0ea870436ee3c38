"""Transformer presets for language: a causal decoder (language model, with a key/value cache
so that generating costs one token's work per step) and an encoder-decoder (translation).

Both are built from the same pre-norm block: self-attention (causal or not), optional
cross-attention to an encoded source, and a feed-forward layer.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.info import DataInfo
from ..errors import NetwrightError
from ..data.tokenizer import BOS, EOS, PAD, UNK
from .common import ACTIVATIONS, Activation, Dropout, PosInt, check_heads
from .registry import register_model

Cache = dict[str, torch.Tensor]


class Attention(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q, self.k, self.v, self.out = (nn.Linear(d, d) for _ in range(4))

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)  # (B, H, T, D/H)

    def forward(self, x: torch.Tensor, source: torch.Tensor | None = None, causal: bool = False,
                mask: torch.Tensor | None = None, cache: Cache | None = None) -> torch.Tensor:
        """Self-attention over ``x`` (``source=None``) or cross-attention to ``source``.

        ``cache`` keeps keys and values: for self-attention it grows by the new steps, for
        cross-attention it is computed once. ``mask`` (B, 1, 1, S) marks keys that take part.
        """
        q = self._split(self.q(x))
        if source is None:
            k, v = self._split(self.k(x)), self._split(self.v(x))
            if cache is not None:
                if "k" in cache:
                    k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
                cache["k"], cache["v"] = k, v
        elif cache is not None and "k" in cache:
            k, v = cache["k"], cache["v"]
        else:
            k, v = self._split(self.k(source)), self._split(self.v(source))
            if cache is not None:
                cache["k"], cache["v"] = k, v
        # causal while queries and keys are the same steps; a cached step (one query) sees every earlier key
        is_causal = causal if cache is None else causal and q.shape[2] == k.shape[2]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal,
                                           dropout_p=self.dropout if self.training else 0.0)
        b, h, t, dh = y.shape
        return self.out(y.transpose(1, 2).reshape(b, t, h * dh))  # (B, T, D)


class Block(nn.Module):
    """Pre-norm transformer block: self-attention, optional cross-attention, feed-forward."""

    def __init__(self, d: int, heads: int, ff: int, dropout: float, activation: str, cross: bool = False):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(d), Attention(d, heads, dropout)
        self.norm_x = nn.LayerNorm(d) if cross else None
        self.cross = Attention(d, heads, dropout) if cross else None
        self.norm2 = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, ff), ACTIVATIONS[activation](), nn.Linear(ff, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, causal: bool = False, mask: torch.Tensor | None = None,
                memory: torch.Tensor | None = None, memory_mask: torch.Tensor | None = None,
                cache: dict[str, Cache] | None = None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), causal=causal, mask=mask,
                                    cache=None if cache is None else cache.setdefault("self", {})))
        if self.cross is not None:
            x = x + self.drop(self.cross(self.norm_x(x), source=memory, mask=memory_mask,
                                         cache=None if cache is None else cache.setdefault("cross", {})))
        return x + self.drop(self.ff(self.norm2(x)))


def sample_next(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None,
                generator: torch.Generator | None) -> torch.Tensor:
    """One token id per row of ``logits`` (B, V): greedy at temperature 0, else sampled from
    the top-k / top-p (nucleus) part of the softmax."""
    if temperature <= 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        p = torch.softmax(sorted_logits, -1)
        drop = p.cumsum(-1) - p > top_p  # keep the smallest set reaching top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = torch.softmax(logits, -1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


class CausalLM(nn.Module):
    """Decoder-only Transformer language model (GPT-style), learned positions, tied embeddings."""

    def __init__(self, vocab: int, max_len: int, d_model: int, heads: int, layers: int, ff_dim: int, dropout: float,
                 activation: str):
        super().__init__()
        self.max_len = max_len
        self.embed = nn.Embedding(vocab, d_model)
        self.pos = nn.Parameter(torch.randn(1, max_len, d_model) * 0.02)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, heads, ff_dim, dropout, activation) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        nn.init.normal_(self.embed.weight, std=0.02)  # tied output layer: small logits at the start (GPT-2)

    def forward(self, ids: torch.Tensor, caches: list[dict[str, Cache]] | None = None, start: int = 0) -> torch.Tensor:
        """Logits (B, T, V) for every position of ``ids`` (B, T); with ``caches``, ``ids`` are the
        steps after the ``start`` already cached."""
        t = ids.shape[1]
        h = self.drop(self.embed(ids) + self.pos[:, start:start + t])
        for i, block in enumerate(self.blocks):
            h = block(h, causal=True, cache=None if caches is None else caches[i])
        return self.norm(h) @ self.embed.weight.T  # tied output layer: (B, T, V)

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor, steps: int, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, generator: torch.Generator | None = None,
                 use_cache: bool = True) -> torch.Tensor:
        """Continue ``prompt`` (B, T) by ``steps`` tokens. With the cache each step runs the network
        on one token; without it, on the whole context (the last ``max_len`` tokens)."""
        ids = prompt
        caches: list[dict[str, Cache]] | None = None
        for _ in range(steps):
            if use_cache and ids.shape[1] <= self.max_len:
                if caches is None:  # the prompt, once
                    caches = [{} for _ in self.blocks]
                    logits = self(ids, caches, 0)[:, -1]
                else:
                    logits = self(ids[:, -1:], caches, ids.shape[1] - 1)[:, -1]
            else:  # no cache, or past the longest position: the last max_len tokens from scratch
                logits = self(ids[:, -self.max_len:])[:, -1]
            nxt = sample_next(logits, temperature, top_k, top_p, generator)
            ids = torch.cat([ids, nxt[:, None]], dim=1)
        return ids


class Seq2Seq(nn.Module):
    """Encoder-decoder Transformer (translation), one shared vocabulary and tied embeddings."""

    def __init__(self, vocab: int, max_len: int, d_model: int, heads: int, enc_layers: int, dec_layers: int,
                 ff_dim: int, dropout: float, activation: str):
        super().__init__()
        self.max_len = max_len
        self.embed = nn.Embedding(vocab, d_model)
        self.src_pos = nn.Parameter(torch.randn(1, max_len, d_model) * 0.02)
        self.tgt_pos = nn.Parameter(torch.randn(1, max_len, d_model) * 0.02)
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.ModuleList(Block(d_model, heads, ff_dim, dropout, activation) for _ in range(enc_layers))
        self.decoder = nn.ModuleList(Block(d_model, heads, ff_dim, dropout, activation, cross=True)
                                     for _ in range(dec_layers))
        self.enc_norm, self.dec_norm = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        nn.init.normal_(self.embed.weight, std=0.02)  # tied output layer: small logits at the start

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(memory (B, S, D), key mask (B, 1, 1, S): False at padding)."""
        mask = (src != PAD)[:, None, None, :]
        h = self.drop(self.embed(src) + self.src_pos[:, : src.shape[1]])
        for block in self.encoder:
            h = block(h, mask=mask)
        return self.enc_norm(h), mask

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor,
               caches: list[dict[str, Cache]] | None = None, start: int = 0) -> torch.Tensor:
        h = self.drop(self.embed(tgt) + self.tgt_pos[:, start:start + tgt.shape[1]])
        for i, block in enumerate(self.decoder):
            h = block(h, causal=True, memory=memory, memory_mask=mask, cache=None if caches is None else caches[i])
        return self.dec_norm(h) @ self.embed.weight.T  # (B, T, V)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor | None = None) -> torch.Tensor:
        """Logits for every target position (teacher forcing); ``tgt`` defaults to ``<bos>`` alone."""
        if tgt is None:
            tgt = torch.full((src.shape[0], 1), BOS, dtype=src.dtype, device=src.device)
        memory, mask = self.encode(src)
        return self.decode(tgt, memory, mask)

    @torch.no_grad()
    def translate(self, src: torch.Tensor, max_len: int | None = None, beam: int = 1,
                  length_penalty: float = 1.0) -> list[list[int]]:
        """Greedy (``beam=1``) or beam-search decoding; token ids without ``<bos>``/``<eos>``."""
        max_len = min(max_len or self.max_len, self.max_len)
        memory, mask = self.encode(src)
        if beam <= 1:
            return self._greedy(memory, mask, max_len)
        return [self._beam(memory[i:i + 1], mask[i:i + 1], max_len, beam, length_penalty) for i in range(len(src))]

    def _greedy(self, memory: torch.Tensor, mask: torch.Tensor, max_len: int) -> list[list[int]]:
        b = memory.shape[0]
        ids = torch.full((b, 1), BOS, dtype=torch.long, device=memory.device)
        caches = [{} for _ in self.decoder]
        done = torch.zeros(b, dtype=torch.bool, device=memory.device)
        for t in range(max_len - 1):
            nxt = self.decode(ids[:, -1:], memory, mask, caches, t)[:, -1].argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
            ids = torch.cat([ids, nxt[:, None]], 1)
            done |= nxt == EOS
            if done.all():
                break
        return [_strip(row.tolist()) for row in ids]

    def _beam(self, memory: torch.Tensor, mask: torch.Tensor, max_len: int, k: int, alpha: float) -> list[int]:
        beams: list[tuple[float, list[int]]] = [(0.0, [BOS])]
        finished: list[tuple[float, list[int]]] = []
        for _ in range(max_len - 1):
            seqs = torch.tensor([s for _, s in beams], device=memory.device)
            n = len(beams)
            logp = torch.log_softmax(self.decode(seqs, memory.expand(n, -1, -1), mask.expand(n, -1, -1, -1))[:, -1], -1)
            scores = torch.tensor([sc for sc, _ in beams], device=memory.device)[:, None] + logp  # (n, V)
            top = torch.topk(scores.flatten(), k)
            beams = []
            vocab = logp.shape[-1]
            for score, flat in zip(top.values.tolist(), top.indices.tolist()):
                seq = [*seqs[flat // vocab].tolist(), flat % vocab]
                (finished if flat % vocab == EOS else beams).append((score, seq))
            if not beams or len(finished) >= k:
                break
        pool = finished or beams
        best = max(pool, key=lambda c: c[0] / (len(c[1]) ** alpha))  # length-normalised log-probability
        return _strip(best[1])


def _strip(ids: list[int]) -> list[int]:
    out = []
    for i in ids[1:]:
        if i == EOS:
            break
        if i > UNK:
            out.append(i)
    return out


@register_model("transformer_lm", family="transformer", task="language_model")
def transformer_lm(
    info: DataInfo,
    d_model: PosInt = 128,
    heads: PosInt = 4,
    layers: PosInt = 4,
    ff_dim: PosInt = 512,
    dropout: Dropout = 0.1,
    activation: Activation = "gelu",
) -> nn.Module:
    """Transformer decoder (causal) language model: the Transformer family's decoder preset.

    Args:
        d_model: token width.
        heads: attention heads (must divide d_model).
        layers: decoder blocks.
        ff_dim: feed-forward width.
        dropout: dropout on embeddings, attention and blocks.
        activation: feed-forward non-linearity.
    """
    if info.task != "language_model":
        raise NetwrightError(f"model transformer_lm: models language (data such as pydoc or corpus); "
                             f"'{info.name}' is {info.task} data")
    check_heads(d_model, heads)
    return CausalLM(len(info.vocab), info.input_shape[0], d_model, heads, layers, ff_dim, dropout, activation)


@register_model("transformer_seq2seq", family="transformer", task="translation")
def transformer_seq2seq(
    info: DataInfo,
    d_model: PosInt = 128,
    heads: PosInt = 4,
    enc_layers: PosInt = 3,
    dec_layers: PosInt = 3,
    ff_dim: PosInt = 512,
    dropout: Dropout = 0.1,
    activation: Activation = "gelu",
) -> nn.Module:
    """Transformer encoder-decoder for sequence-to-sequence tasks (translation).

    Args:
        d_model: token width.
        heads: attention heads (must divide d_model).
        enc_layers: encoder blocks.
        dec_layers: decoder blocks (self-attention, cross-attention, feed-forward).
        ff_dim: feed-forward width.
        dropout: dropout on embeddings, attention and blocks.
        activation: feed-forward non-linearity.
    """
    if info.task != "translation":
        raise NetwrightError(f"model transformer_seq2seq: translates sentence pairs (data such as bible_en_es or "
                             f"parallel_text); '{info.name}' is {info.task} data")
    check_heads(d_model, heads)
    return Seq2Seq(len(info.vocab), info.input_shape[0], d_model, heads, enc_layers, dec_layers, ff_dim, dropout,
                   activation)


__all__: list[Any] = ["CausalLM", "Seq2Seq", "sample_next"]
