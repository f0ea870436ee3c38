"""Where each table column sits in the model's input row: its one-hot block (or single value),
then its missing indicator when it has one."""

from __future__ import annotations

from typing import Any


def column_width(col: dict[str, Any]) -> int:
    """Model input columns of one table column's values: 1, or one per category when one-hot
    encoded (its missing indicator, when it has one, follows and is not counted)."""
    return len(col["categories"]) if col["kind"] == "categorical" else 1


def column_blocks(columns: list[dict[str, Any]]) -> list[tuple[dict[str, Any], slice]]:
    """Each column with the slice of input columns that holds its values (indicators skipped)."""
    out, start = [], 0
    for col in columns:
        width = column_width(col)
        out.append((col, slice(start, start + width)))
        start += width + (1 if col.get("indicator") else 0)
    return out
