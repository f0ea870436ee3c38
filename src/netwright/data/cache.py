"""Where netwright keeps what it makes once and reuses: generated data sets, measured peaks, the
Parquet copies of big CSV files."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache folder (``NETWRIGHT_CACHE`` or ``~/.cache/netwright``)."""
    return Path(os.environ.get("NETWRIGHT_CACHE", Path.home() / ".cache" / "netwright"))
