"""Tokenizers: characters, subword BPE or words, trained on the corpus (the ``tokenizers`` library).

All serialise to JSON (no pickle), are saved with the run, and reserve the ids
``0 = <pad>``, ``1 = <bos>``, ``2 = <eos>``, ``3 = <unk>``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from ..errors import DataError, NetwrightError

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
PAD, BOS, EOS, UNK = range(4)


class CharTokenizer:
    """One id per character seen in the training text; unknown characters are an error."""

    kind = "char"

    def __init__(self, chars: list[str]):
        self.tokens = SPECIALS + list(chars)
        self.index = {c: i for i, c in enumerate(self.tokens)}

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int | None = None) -> "CharTokenizer":
        chars: set[str] = set()
        for t in texts:
            chars.update(t)
        return cls(sorted(chars))

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def encode(self, text: str, strict: bool = True) -> list[int]:
        missing = sorted({c for c in text if c not in self.index}) if strict else []
        if missing:
            raise DataError(f"characters outside the model's vocabulary: {''.join(missing)!r}; the model knows "
                            f"{self.vocab_size - len(SPECIALS)} characters")
        return [self.index.get(c, UNK) for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.tokens[i] for i in ids if i >= len(SPECIALS))

    def token(self, i: int) -> str:
        return self.tokens[i]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "char", "chars": self.tokens[len(SPECIALS):]}


class BpeTokenizer:
    """Byte-level BPE (as in GPT-2), trained on the corpus with the ``tokenizers`` library."""

    kind = "bpe"

    def __init__(self, tok: Any):
        self.tok = tok

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 2000) -> "BpeTokenizer":
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(texts, trainer)
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    def encode(self, text: str, strict: bool = True) -> list[int]:
        return self.tok.encode(text).ids  # byte-level: every text has an encoding

    def decode(self, ids: Iterable[int]) -> str:
        return self.tok.decode([i for i in ids if i >= len(SPECIALS)])

    def token(self, i: int) -> str:
        return self.tok.decode([i]) if i >= len(SPECIALS) else SPECIALS[i]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "tokenizer": json.loads(self.tok.to_str())}


class WordTokenizer(BpeTokenizer):
    """Lower-cased words and punctuation (the ``tokenizers`` library's word-level model): the
    ``vocab_size`` most frequent words, the rest ``<unk>``."""

    kind = "word"

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 20000) -> "WordTokenizer":
        from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

        tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
        tok.train_from_iterator(texts, trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                                                  show_progress=False))
        return cls(tok)


KINDS = {"char": CharTokenizer, "bpe": BpeTokenizer, "word": WordTokenizer}


AnyTokenizer = CharTokenizer | BpeTokenizer  # WordTokenizer is a BpeTokenizer with another model


def build(kind: str, texts: list[str], vocab_size: int) -> AnyTokenizer:
    """Train a tokenizer of ``kind`` (char, bpe or word) on ``texts``."""
    if not any(texts):
        raise DataError("the corpus is empty: there is no text to learn a vocabulary from")
    return KINDS[kind].train(texts, vocab_size)


def from_dict(d: dict[str, Any]) -> AnyTokenizer:
    if d.get("kind") == "char":
        return CharTokenizer(d["chars"])
    if d.get("kind") in ("bpe", "word"):
        from tokenizers import Tokenizer

        return KINDS[d["kind"]](Tokenizer.from_str(json.dumps(d["tokenizer"])))
    raise NetwrightError(f"unknown tokenizer kind {d.get('kind')!r}")


def pad(ids: list[int], length: int) -> list[int]:
    """``ids`` cut or padded (with ``<pad>``) to ``length``."""
    return ids[:length] + [PAD] * max(0, length - len(ids))


def digest(d: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
