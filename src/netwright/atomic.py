"""Atomic file writes: temporary file in the same folder, flush (and fsync), rename.

A reader never sees a half-written file, and a crash mid-write leaves the previous
version in place. ``durable=False`` skips the fsync for files that are rewritten often
and can be rebuilt (the per-epoch metrics); the rename keeps them atomic.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
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
    journal = _active(path)
    if journal is not None:
        journal.keep(path)
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


# ---------------------------------------------------------------------- a stage's journal

JOURNAL_PREFIX = ".journal-"  # a folder inside the run: what a stage replaced, to put back if it fails
_current: contextvars.ContextVar["Journal | None"] = contextvars.ContextVar("journal", default=None)


def _inside(root: Path) -> list[str]:
    """Every path under ``root`` (relative), leaving out journals."""
    return sorted(str(rel) for rel in (p.relative_to(root) for p in root.rglob("*"))
                  if not any(part.startswith(JOURNAL_PREFIX) for part in rel.parts))


class Journal:
    """Everything the writes of this module change under ``root``: the paths that were there
    when it opened, the files they replaced (hard links, so nothing is copied) and the trees
    they removed. :meth:`rollback` puts ``root`` back as it was; a manifest on disk lets the next
    writer do the same after a crash (:func:`recover`)."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.before = _inside(self.root)
        self._there = set(self.before)
        self.saved: dict[str, str] = {}  # path in root -> its backup's name in the journal
        self.folder = Path(tempfile.mkdtemp(prefix=JOURNAL_PREFIX, dir=self.root))
        self._write()

    def covers(self, path: Path) -> bool:
        return path.resolve().is_relative_to(self.root)

    def _write(self) -> None:
        write_json(self.folder / "manifest.json", {"before": self.before, "saved": self.saved})

    def _backup(self) -> Path:
        return self.folder / f"{len(self.saved)}"

    def keep(self, path: Path) -> None:
        """Before ``path`` is replaced: keep its content as it was when the journal opened (a file
        the stage itself wrote first is not kept: rollback removes it)."""
        rel = str(path.resolve().relative_to(self.root))
        if rel in self.saved or rel not in self._there or not path.is_file():
            return
        backup = self._backup()
        try:
            os.link(path, backup)  # the old inode lives on under the journal when the rename replaces it
        except OSError:
            shutil.copy2(path, backup)
        self.saved[rel] = backup.name
        self._write()

    def remove(self, path: Path) -> None:
        """Remove the tree ``path``: into the journal when it was there before (it comes back on
        rollback), for good when the stage made it."""
        rel = str(path.resolve().relative_to(self.root))
        if rel in self.saved or rel not in self._there:
            shutil.rmtree(path, ignore_errors=True)
            return
        backup = self._backup()
        try:
            os.replace(path, backup)
        except OSError:  # another file system: copy aside, then remove
            shutil.copytree(path, backup, symlinks=True)
            shutil.rmtree(path)
        self.saved[rel] = backup.name
        self._write()

    def rollback(self) -> None:
        _undo(self.root, self.folder)

    def commit(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _undo(root: Path, folder: Path) -> None:
    """Put ``root`` back as the journal in ``folder`` recorded it, then drop the journal."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        before = set(manifest["before"])
        for rel, name in manifest["saved"].items():  # what was replaced or removed comes back
            target, backup = root / rel, folder / name
            if not backup.exists():
                continue
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(backup, target)
        made = [root / rel for rel in _inside(root) if rel not in before]
        for p in sorted(made, key=lambda q: len(q.parts), reverse=True):  # what the stage added goes
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _active(path: Path) -> Journal | None:
    j = _current.get()
    return j if j is not None and j.covers(path) else None


@contextlib.contextmanager
def journal(root: str | os.PathLike) -> Iterator[Journal | None]:
    """While the block runs, the atomic writes and :func:`remove_tree` under ``root`` are
    journaled; if it raises, ``root`` is put back byte for byte as it was, files the block added
    are removed, and the error goes on. Nested blocks share the outer journal."""
    if _current.get() is not None:
        yield _current.get()
        return
    j = Journal(Path(root))
    token = _current.set(j)
    try:
        yield j
    except BaseException as e:
        _current.reset(token)
        if getattr(e, "keeps_writes", False):  # a finished stage whose result falls short: it stays
            j.commit()
        else:
            j.rollback()
        raise
    _current.reset(token)
    j.commit()


def remove_tree(path: str | os.PathLike) -> None:
    """Remove a folder: into the active journal when one covers it, else for good."""
    path = Path(path)
    j = _active(path)
    if j is not None and path.exists():
        j.remove(path)
    else:
        shutil.rmtree(path, ignore_errors=True)


def recover(root: str | os.PathLike) -> bool:
    """Undo what a writer that died mid-stage (kill -9, power loss) changed under ``root`` (call
    it holding the run's lock); True when there was something to undo."""
    found = False
    for folder in sorted(Path(root).glob(f"{JOURNAL_PREFIX}*")):
        if folder.is_dir() and (folder / "manifest.json").is_file():
            _undo(Path(root).resolve(), folder.resolve())
            found = True
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return found
