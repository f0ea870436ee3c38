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
