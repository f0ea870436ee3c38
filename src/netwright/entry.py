"""The ``netwright`` console script: a Ctrl-C while the command line's modules are still being
imported (the first second or so) is one line and exit code 130, as it is later."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from .cli import main as run_command
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    run_command()
