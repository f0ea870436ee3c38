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
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

_UMASK = os.umask(0)
os.umask(_UMASK)
DIR_MODE = 0o777 & ~_UMASK
FILE_MODE = 0o666 & ~_UMASK  # what open() would give: mkstemp's private 0600 is for the temporary only
TMP_SUFFIX = ".tmp"  # write_with's temporaries: .NAME.RANDOM.tmp beside the file


def write_with(path: str | os.PathLike, writer: Callable[[Path], None], durable: bool = True) -> Path:
    """Call ``writer(tmp_path)`` and atomically move the result to ``path``.

    ``writer`` receives the path of a fresh temporary file in the destination folder;
    use this for libraries that write files themselves (safetensors, matplotlib).
    """
    path = Path(path)
    journal = _active(path)
    if journal is not None:
        journal.keep(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
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
MANIFEST = "manifest.json"
_current: contextvars.ContextVar["Journal | None"] = contextvars.ContextVar("journal", default=None)


def _ancestors(rel: str) -> list[str]:
    """``a/b/c`` -> ``["a", "a/b", "a/b/c"]``."""
    parts = Path(rel).parts
    return [str(Path(*parts[:i])) for i in range(1, len(parts) + 1)]


class Journal:
    """What the writes of this module change under ``root``, and nothing else: the files they
    replaced (hard links, so nothing is copied), the trees they removed and the paths they made.
    :meth:`rollback` puts those back as they were; a manifest on disk, written before each change,
    lets the next writer do the same after a crash (:func:`recover`). Files that others put under
    ``root`` meanwhile are left alone."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.saved: dict[str, str] = {}  # path in root -> its backup's name in the journal
        self.made: list[str] = []  # paths in root that did not exist: removed on rollback
        self.folder = Path(tempfile.mkdtemp(prefix=JOURNAL_PREFIX, dir=self.root))
        self._write()

    def covers(self, path: Path) -> bool:
        real = path.resolve()
        return real.is_relative_to(self.root) and not real.is_relative_to(self.folder)

    def _write(self) -> None:
        write_json(self.folder / MANIFEST, {"saved": self.saved, "made": self.made})

    def _rel(self, path: Path) -> str:
        return str(path.parent.resolve().joinpath(path.name).relative_to(self.root))

    def _ours(self, rel: str) -> bool:
        """``rel`` lies in a tree this journal made or set aside: rollback handles it already."""
        return any(a in self.saved or a in self.made for a in _ancestors(rel))

    def keep(self, path: Path) -> None:
        """Before ``path`` is written: keep the file that is there (its first content comes back on
        rollback), or record the path as made here (with the folders above it that do not exist)."""
        rel = self._rel(path)
        if self._ours(rel):
            return
        if path.is_file():
            backup = self.folder / str(len(self.saved))
            self.saved[rel] = backup.name
            self._write()  # recorded before the link: a crash in between finds no backup and skips it
            try:
                os.link(path, backup)  # the old inode lives on under the journal when the rename replaces it
            except OSError:
                shutil.copy2(path, backup)
            return
        self.made_path(path)

    def made_path(self, path: Path) -> None:
        """``path`` (and the folders above it that do not exist yet) is about to be made here."""
        rel = self._rel(path)
        if self._ours(rel) or path.exists() or path.is_symlink():
            return
        first = next(a for a in _ancestors(rel) if not (self.root / a).exists())
        self.made.append(first)
        self._write()

    def remove(self, path: Path) -> None:
        """Remove the tree ``path``: into the journal when it was there before (it comes back on
        rollback), for good when the stage made it."""
        rel = self._rel(path)
        if self._ours(rel):
            shutil.rmtree(path, ignore_errors=True)
            return
        backup = self.folder / str(len(self.saved))
        self.saved[rel] = backup.name
        self._write()  # recorded before the move: a crash in between finds the tree still in place
        try:
            os.replace(path, backup)
        except OSError:  # another file system: copy aside, then remove
            shutil.copytree(path, backup, symlinks=True)
            shutil.rmtree(path)

    def rollback(self) -> None:
        _undo(self.root, self.folder)

    def commit(self) -> None:
        (self.folder / MANIFEST).unlink()  # the commit point: without a manifest there is nothing to undo
        shutil.rmtree(self.folder, ignore_errors=True)


def _undo(root: Path, folder: Path) -> None:
    """Put back what the journal in ``folder`` recorded under ``root``, then drop the journal.
    Safe to repeat after a crash inside it: each step finds its work done or does it."""
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    made = manifest.get("made")
    if made is None:  # a journal of an earlier version: it listed what was there instead
        before = set(manifest["before"])
        made = [rel for rel in _inside(root) if rel not in before]
    for rel in sorted(made, key=lambda r: len(Path(r).parts), reverse=True):  # what the stage made goes
        p = root / rel
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    for rel, name in manifest["saved"].items():  # what was replaced or removed comes back
        target, backup = root / rel, folder / name
        if not backup.exists() and not backup.is_symlink():
            continue  # put back already, or the crash came before it was set aside
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(backup, target)
    (folder / MANIFEST).unlink()
    shutil.rmtree(folder, ignore_errors=True)


def _inside(root: Path) -> list[str]:
    """Every path under ``root`` (relative), leaving out journals."""
    return sorted(str(rel) for rel in (p.relative_to(root) for p in root.rglob("*"))
                  if not any(part.startswith(JOURNAL_PREFIX) for part in rel.parts))


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
        if folder.is_dir() and (folder / MANIFEST).is_file():
            _undo(Path(root).resolve(), folder.resolve())
            found = True
        else:
            shutil.rmtree(folder, ignore_errors=True)
    if found:  # the dead writer's temporaries (write_with) go too
        for tmp in Path(root).rglob(f".*{TMP_SUFFIX}"):
            tmp.unlink(missing_ok=True)
    return found


def make_dirs(path: str | os.PathLike) -> Path:
    """``mkdir -p``, the folders it makes recorded in the active journal (gone on rollback)."""
    will_make(path)
    Path(path).mkdir(parents=True, exist_ok=True)
    return Path(path)


def will_make(path: str | os.PathLike) -> None:
    """``path`` is about to be made by other means than this module's: the active journal records
    it first (it goes on rollback)."""
    j = _active(Path(path))
    if j is not None:
        j.made_path(Path(path))


def _host_tag() -> str:
    import hashlib
    import socket

    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def owned_name(prefix: str) -> str:
    """``prefix`` + this machine's tag + this process's id + a random token: a name nobody else
    makes, whose maker can be asked whether it still runs (:func:`dead_maker`)."""
    return f"{prefix}{_host_tag()}-{os.getpid()}-{secrets.token_hex(4)}"


def dead_maker(name: str, prefix: str) -> bool:
    """Whether the process that made ``name`` (:func:`owned_name` with ``prefix``) on this machine
    has ended; False for a name made on another machine (a folder shared over the network), whose
    processes cannot be asked."""
    parts = name[len(prefix):].split("-") if name.startswith(prefix) else []
    if len(parts) < 3 or parts[0] != _host_tag() or not parts[1].isdigit():
        return len(parts) < 3  # a name of an earlier version (no machine, no process): nobody to wait for
    return not pid_alive(int(parts[1]))


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def make_temp_dir(prefix: str, parent: str | os.PathLike) -> Path:
    """A fresh folder in ``parent`` (made if needed) named by :func:`owned_name`, recorded in the
    active journal before it is made."""
    parent = make_dirs(parent)
    while True:
        path = parent / owned_name(prefix)
        will_make(path)
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


# ---------------------------------------------------------------------- replacing a whole folder


def is_mount_point(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a mount point, a bind mount of a folder of the same file system included
    (which ``os.path.ismount`` misses; Linux lists every mount in /proc/self/mountinfo)."""
    if os.path.ismount(path):
        return True
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            points = {line.split()[4] for line in f if len(line.split()) > 4}
    except OSError:
        return False
    decoded = {p.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
               for p in points}
    return real in decoded


SWAP_SUFFIX, OLD_INFIX = ".swap", ".old-"  # beside the folder: the swap under way, and the old one set aside


def _swap_names(home: Path) -> tuple[Path, str]:
    """The swap's note and the prefix of the old folder's name while it is set aside."""
    return home.parent / f".{home.name}{SWAP_SUFFIX}", f".{home.name}{OLD_INFIX}"


def replace_tree(new: str | os.PathLike, home: str | os.PathLike) -> None:
    """Move the finished folder ``new`` to ``home``, replacing what is there, so that a crash at
    any instruction leaves the old folder or the new one (:func:`finish_replace` completes or undoes
    a swap a dead process began); never fewer folders than it found. Inside a stage's journal the
    old folder goes into the journal instead (back if the stage fails)."""
    new, home = Path(new), Path(home)
    j = _active(home)
    if j is not None:
        if home.exists():
            j.remove(home)
        else:
            j.made_path(home)
        os.replace(new, home)
        return
    if not home.exists():
        os.rename(new, home)
        return
    intent, prefix = _swap_names(home)
    aside = home.parent / owned_name(prefix)
    # the note first, written in place (a half-written one is read as "nothing moved yet", which is true)
    fd = os.open(intent, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"new": new.name, "old": aside.name}, f)
        f.flush()
        os.fsync(f.fileno())
    os.rename(home, aside)
    try:
        os.rename(new, home)
    except BaseException:
        os.rename(aside, home)  # put the old one back: this swap did not happen
        intent.unlink(missing_ok=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)  # the new folder is home: the old one goes
    intent.unlink(missing_ok=True)


def replacing(home: str | os.PathLike) -> bool:
    """Whether a :func:`replace_tree` of ``home`` was begun and not finished (its note is there)."""
    return _swap_names(Path(home))[0].is_file()


def finish_replace(home: str | os.PathLike) -> str | None:
    """Complete a :func:`replace_tree` that a dead process began at ``home`` (call it holding the
    folder's lock): what it did (``"finished"``, ``"undone"``) or None when nothing was under way."""
    home = Path(home)
    intent, _ = _swap_names(home)
    try:
        names = json.loads(intent.read_text(encoding="utf-8"))
        new, aside = home.parent / Path(names["new"]).name, home.parent / Path(names["old"]).name
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):  # written halfway: no folder was moved yet
        intent.unlink(missing_ok=True)
        return "undone"
    if not home.exists():  # died between the two moves
        if new.is_dir():
            os.rename(new, home)  # the new folder was complete before the swap began
            done = "finished"
        else:
            os.rename(aside, home)
            done = "undone"
    elif aside.exists():  # the new folder is home; the old one was still being removed
        done = "finished"
    else:  # nothing was moved yet (the new folder is still apart), or all but the note was done
        done = "undone" if new.is_dir() else "finished"
    if done == "finished":
        shutil.rmtree(aside, ignore_errors=True)
    intent.unlink(missing_ok=True)
    return done
