"""Atomic file writes: temporary file in the same folder, flush (and fsync), rename.

A reader never sees a half-written file, and a crash mid-write leaves the previous
version in place. ``durable=False`` skips the fsync for files that are rewritten often
and can be rebuilt (the per-epoch metrics); the rename keeps them atomic.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

_UMASK = os.umask(0)
os.umask(_UMASK)
DIR_MODE = 0o777 & ~_UMASK
FILE_MODE = 0o666 & ~_UMASK  # what open() would give: mkstemp's private 0600 is for the temporary only


def write_with(path: str | os.PathLike, writer: Callable[[Path], None], durable: bool = True) -> Path:
    """Call ``writer(tmp_path)`` and atomically move the result to ``path``.

    ``writer`` receives the path of a fresh temporary file in the destination folder;
    use this for libraries that write files themselves (safetensors, matplotlib).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        writer(tmp_path)
        if durable:
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp_path, FILE_MODE)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def write_bytes(path: str | os.PathLike, data: bytes, durable: bool = True) -> Path:
    """Atomically write ``data`` to ``path``."""
    return write_with(path, lambda tmp: tmp.write_bytes(data), durable)


def write_text(path: str | os.PathLike, text: str, durable: bool = True) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    return write_bytes(path, text.encode("utf-8"), durable)


def finite(obj: Any) -> Any:
    """``obj`` with NaN and infinities replaced by None (JSON has no such numbers)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (NaN and infinities become null)."""
    return write_text(path, json.dumps(finite(obj), indent=2, allow_nan=False) + "\n")


def write_jsonl(path: str | os.PathLike, rows: list[dict], durable: bool = True) -> Path:
    """Atomically write one compact JSON object per line."""
    return write_text(path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in rows), durable)
