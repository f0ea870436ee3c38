"""The ``netwright`` console script (and ``python -m netwright``).

A Ctrl-C outside a run's transaction (while the modules load, the data is read, the model is
built) stops the command at once: one line, exit code 130. A KeyboardInterrupt raised in the
middle of an import can leave a module half made, which a library may then trip over and report
as something else entirely; there is nothing to undo yet, so the process ends there. Inside a
transaction (``Run.lock``) a Ctrl-C raises KeyboardInterrupt as usual, so that what the command
wrote is rolled back, and the trainer saves a checkpoint on it.
"""

from __future__ import annotations

import os
import signal
import sys

_MAIN = os.getpid()


def stop_now(signum: int, frame: object) -> None:
    """SIGINT outside a transaction: say so and end (processes forked from this one raise as usual)."""
    if os.getpid() != _MAIN:
        raise KeyboardInterrupt
    os.write(2, b"interrupted\n")
    os._exit(130)


def main() -> None:
    signal.signal(signal.SIGINT, stop_now)
    try:
        from .cli import main as run_command
    except KeyboardInterrupt:  # the handler above was replaced while the modules loaded
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    run_command()
