"""User-facing errors.

Anything a user can fix (a bad spec, a missing column, a corrupt file) raises a
:class:`NetwrightError` whose message names the problem and the fix. The CLI prints
it as one line and exits with code 2; Python callers catch it like any exception.
"""

from __future__ import annotations


class NetwrightError(Exception):
    """A problem the user can fix; the message says how."""


class SpecError(NetwrightError):
    """One or more problems in a spec, each with its path (``train.optimizer.lr``)."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = f"invalid spec: {self.problems[0]}"
        else:
            message = f"invalid spec ({len(self.problems)} problems): " + "; ".join(self.problems)
        super().__init__(message)


class DataError(NetwrightError):
    """Input data that cannot be used as given."""


class CheckpointError(NetwrightError):
    """A weights or checkpoint file that is missing, corrupt or does not match."""


class TrainingError(NetwrightError):
    """Training stopped because it could not go on (for example a non-finite loss)."""


class RunLocked(NetwrightError):
    """Another process is writing the same run."""


class TrainingInterrupted(NetwrightError):
    """SIGINT or SIGTERM stopped training after a checkpoint was written."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class CallbackFailed(NetwrightError):
    """A training callback raised; training stopped with a checkpoint (resumable)."""


class ResultUnmet(NetwrightError):
    """A stage finished and wrote its result, which does not meet what was asked (no variant
    within an accuracy budget, an export that fails its verification): the files stay, for the
    user to read, and the command still fails."""

    keeps_writes = True  # a stage's journal commits instead of rolling back (netwright.atomic.journal)


MAX_MESSAGE = 2000  # characters of one error line; the rest is cut (a YAML alias bomb, a huge value)


def one_line(message: str) -> str:
    """An error message as one line of bounded length."""
    message = " ".join(message.split()) if "\n" in message else message
    return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + f"... ({len(message):,} characters)"


def environment_problem(e: BaseException) -> str | None:
    """The line for an operating-system problem a user can fix (permissions, a full disk, a long
    name, a bad port), or None for anything else."""
    import errno

    if not isinstance(e, OSError):
        return None
    where = f"{e.filename}: " if e.filename else ""
    fixes = {
        errno.EACCES: "permission denied; make the folder writable or choose another (--runs-dir, --out)",
        errno.EPERM: "operation not permitted; make the folder writable or choose another",
        errno.EROFS: "read-only file system; choose a writable folder (--runs-dir, --out)",
        errno.ENOSPC: "no space left on the device; free some space or write elsewhere (the earlier files are "
                      "kept)",
        errno.EDQUOT: "disk quota exceeded; free some space or write elsewhere",
        errno.ENAMETOOLONG: "file name too long; choose a shorter name",
        errno.EMFILE: "too many open files; raise the limit (ulimit -n)",
        errno.EADDRINUSE: "address already in use; choose another --port or stop the server holding it",
        errno.EADDRNOTAVAIL: "address not available on this machine; check --host",
        errno.EISDIR: "is a folder; give a file",
        errno.ENOTDIR: "not a folder; give a folder",
        errno.ENOENT: "no such file or folder; check the path",
    }
    fix = fixes.get(e.errno)
    return f"{where}{fix}" if fix else None
