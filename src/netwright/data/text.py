"""A plain text file as character-level sequences: predict the next character."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .info import RawData
from .registry import register_dataset


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
