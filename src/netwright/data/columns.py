"""What each column of a table holds: numeric, categorical, dates, ID-like or free text.

Used by ``netwright init`` to write a starting spec for a user's own CSV; the rules are the
ones a person applies when looking at a table for the first time, and each column's reason
is kept so the spec can say why a column is used or left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .derive import DATE_SHARE, _when, formatted_column, read_formatted
from .missing import is_missing, number_markers

MAX_CATEGORIES = 50  # more distinct values than this (and than a fifth of the rows) is not a category


@dataclass
class Column:
    """One column's kind, with the facts behind it."""

    name: str
    kind: str  # numeric | categorical | date | id | text
    distinct: int
    missing: int
    reason: str
    markers: list[str] = field(default_factory=list)  # cells of a number column read as missing ('?')
    transform: str | None = None  # log: positive numbers with a long tail


def _number(v: str) -> float | None:
    try:
        return float(v)
    except ValueError:
        return None


def infer_column(name: str, values: list[str]) -> Column:
    """Classify one column of raw cells."""
    cells = [v.strip() for v in values]
    signs = formatted_column(cells)  # '$1,200', '12%': numbers as the loader reads them
    if signs:
        cells = read_formatted(cells)
    written = f", written with {' '.join(repr(s) for s in signs)}" if signs else ""
    marks = number_markers(cells)  # a few '?' or 'unknown' in a column of numbers: missing cells
    filled = [v for v in cells if not is_missing(v, frozenset(marks))]
    missing = len(cells) - len(filled)
    distinct = len(set(filled))
    n = max(len(filled), 1)
    numbers = [_number(v) for v in filled]
    if filled and all(x is not None for x in numbers):
        integral = all(float(x).is_integer() for x in numbers)
        if integral and distinct == n and n >= 20 and _looks_like_id(name, numbers):
            return Column(name, "id", distinct, missing, "a different whole number in every row, counting up: "
                                                          "it names rows, it does not describe them")
        listed = ", ".join(f"'{m}'" for m in sorted(marks))
        tail = _long_tail([float(x) for x in numbers if x is not None])
        return Column(name, "numeric", distinct, missing, f"{distinct} distinct numbers{written}"
                      + (f"; {listed} read as missing" if marks else "")
                      + ("; a long tail (skewness {:.1f}): log-transformed".format(tail) if tail else ""),
                      sorted(marks), "log" if tail else None)
    if filled and sum(_when(v) is not None for v in filled) >= DATE_SHARE * len(filled):
        return Column(name, "date", distinct, missing, f"{distinct} distinct dates")
    words = sum(len(v.split()) for v in filled) / n
    if distinct <= 10 or (distinct <= MAX_CATEGORIES and distinct <= n // 5):
        return Column(name, "categorical", distinct, missing, f"{distinct} distinct values")
    if words >= 3:
        return Column(name, "text", distinct, missing, f"free text (about {words:.0f} words a cell)")
    return Column(name, "id", distinct, missing, f"{distinct} distinct codes in {n} rows: too many to be "
                                                 "categories, too short to be text (a code with structure, such as "
                                                 f"a postcode, becomes categories with data.prefix: {{{name}: 3}})")


# a column of non-negative numbers that init log-transforms: skewness above LONG_TAIL and its 99th
# percentile at least TAIL_SPAN times its median (money spread over orders of magnitude; a
# measurement with a few large values, such as breast_cancer's area error at 7.2 times, is not)
LONG_TAIL, TAIL_SPAN = 2.0, 9.0


def _long_tail(values: list[float]) -> float | None:
    """The skewness of non-negative numbers whose tail is long (``LONG_TAIL``, ``TAIL_SPAN``, on
    20 values or more), else ``None``."""
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    if len(v) < 20 or v.min() < 0 or v.std() == 0:
        return None
    skew = float(((v - v.mean()) ** 3).mean() / v.std() ** 3)
    return skew if skew > LONG_TAIL and np.percentile(v, 99) >= TAIL_SPAN * max(np.median(v), 1e-12) else None


def _looks_like_id(name: str, numbers: list[float | None]) -> bool:
    """Every value distinct and either named like an identifier or counting up in steps of one."""
    lowered = name.lower().replace("-", "_")
    named = lowered == "id" or lowered.endswith("_id") or lowered.startswith("id_") or lowered.endswith("id")
    ordered = sorted(float(x) for x in numbers if x is not None)
    consecutive = all(b - a == 1 for a, b in zip(ordered, ordered[1:]))
    return named or consecutive


def infer_columns(table: dict[str, list[str]]) -> list[Column]:
    """Every column of a table read by :func:`netwright.data.tabular.read_csv`, in order."""
    return [infer_column(name, values) for name, values in table.items()]
