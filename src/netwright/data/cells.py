"""A column of raw table cells read at once in Arrow instead of one cell at a time in Python.

:class:`Cells` is the list of a column's cells (it is a ``list``: every per-cell function still
reads it) that also holds the column as Arrow text, trimmed, once. The questions asked of a whole
column (which cells are missing, which read as numbers and as what) are answered from it in
Arrow compute, with the same answers as ``missing.is_missing`` and Python's ``float`` give cell by
cell: Arrow's trimming and number parsing agree with Python's on ASCII text, so a column holding
any other character (or a cell that is not text) is read the per-cell way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_ODD = r"[^\t\n\x0b\x0c\r\x20-\x7e]"  # outside printable ASCII and the whitespace both trim alike
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"  # a number Arrow and Python read alike
_MAYBE = r"(?i)^[+-]?(inf|infinity|nan|[0-9_.e+-]+)$"  # what else Python's float might read ('1_000', 'Inf')


class Cells(list):
    """A column's raw cells, with its Arrow text made once (see the module)."""

    at_once = 64  # fewer cells (a served request) are read one at a time: quicker than a trip to Arrow
    _text: Any = None
    _made = False
    _numbers: tuple[np.ndarray, np.ndarray] | None = None
    _absent: dict[frozenset[str], np.ndarray] | None = None

    def text(self) -> Any:
        """The cells as a trimmed Arrow string array (a missing value as ''), or None where the
        column is short, holds a cell that is not text, or a character outside ASCII."""
        if not self._made:
            self._made = True
            self._text = _arrow_text(self) if len(self) >= self.at_once else None
        return self._text

    @classmethod
    def of_arrow(cls, array: Any) -> "Cells":
        """The cells of an Arrow string array (no nulls), its text made from it without a copy back."""
        cells = cls(array.to_pylist())
        if len(cells) >= cls.at_once:
            cells._made, cells._text = True, _checked(array)
        return cells

    def numbers(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(is a number, its value or NaN) for each cell, as Python's ``float`` reads its text; None
        where :meth:`text` is None."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if self._numbers is not None:
            return self._numbers
        t = self.text()
        if t is None:
            return None
        sure = np.asarray(pc.match_substring_regex(t, _NUMBER).to_numpy(zero_copy_only=False), dtype=bool)
        values = np.full(len(self), np.nan)
        if sure.any():
            values[sure] = pc.cast(t.filter(pa.array(sure)), pa.float64()).to_numpy(zero_copy_only=False)
        rest = np.flatnonzero(~sure)  # what else Python might read, looked for among the other cells only
        maybe = rest[np.asarray(pc.match_substring_regex(t.take(pa.array(rest)), _MAYBE)
                                .to_numpy(zero_copy_only=False), dtype=bool)] if len(rest) else rest
        for row in maybe:
            try:
                values[row] = float(self[row])
                sure[row] = True
            except ValueError:
                pass
        sure.setflags(write=False)
        values.setflags(write=False)
        self._numbers = (sure, values)
        return self._numbers

    def absent(self, tokens: frozenset[str]) -> np.ndarray | None:
        """Which cells are missing (their trimmed text one of ``tokens``), or None where
        :meth:`text` is None; kept for each set of tokens (read-only: every reader shares it)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if self._absent is None:
            self._absent = {}
        if tokens not in self._absent:
            t = self.text()
            if t is None:
                return None
            found = np.asarray(pc.is_in(t, value_set=pa.array(sorted(tokens), pa.string()))
                               .to_numpy(zero_copy_only=False), dtype=bool)
            found.setflags(write=False)
            self._absent[tokens] = found
        return self._absent[tokens]

    def filled_numbers(self, absent: np.ndarray) -> np.ndarray | None:
        """The column's numbers with NaN where ``absent``, when every other cell reads as a number;
        None otherwise (or where :meth:`text` is None)."""
        read = self.numbers()
        if read is None or not (read[0] | absent).all():
            return None
        return np.where(absent, np.nan, read[1])


def cells_of(table: dict[str, Any]) -> dict[str, Any]:
    """``table`` with each list of cells as :class:`Cells` (arrays of numbers as they are)."""
    return {c: v if isinstance(v, (Cells, np.ndarray)) else Cells(v) for c, v in table.items()}


def _arrow_text(cells: list[Any]) -> Any:
    import pyarrow as pa

    if not cells:
        return None
    try:
        arr = pa.array(cells, pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None  # numbers, bools: read cell by cell
    return _checked(arr)


def _checked(arr: Any) -> Any:
    import pyarrow.compute as pc

    if pc.any(pc.match_substring_regex(arr, _ODD)).as_py():
        return None
    return pc.ascii_trim_whitespace(arr.fill_null(""))

