"""A column's cells read at once in Arrow (``data/cells.py``) give what reading them one at a time
gives: the same missing cells, numbers, markers, column kinds, matrix and errors."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netwright.data.cells import Cells
from netwright.data.missing import absent_of, is_missing, number_markers
from netwright.data.preprocess import encode_table
from netwright.data.tabular import table_dataset
from netwright.errors import DataError

# numbers as people and programs write them (some only Python reads: '1_000', 'Infinity'), missing
# tokens, markers, text and categories in several cases, odd whitespace, characters outside ASCII
CELL = st.one_of(
    st.sampled_from(["", " ", "NA", "nan", "-NaN", "null", "None", "N/A", "?", "-", "unknown"]),
    st.sampled_from([" 1.5", "+.5", "5.", "1e3", "-2E-2", "1_000", "Inf", "-infinity", "0x10", "1e", ".", "١٢",
                     "\x1c7", "7\t", "12 kg", "3,5"]),
    st.floats(-1e4, 1e4, allow_nan=False).map(lambda f: f"{f:.3f}"),
    st.integers(-50, 50).map(str),
    st.sampled_from(["basic", "Basic", "BASIC", " pro ", "plus", "café", "(missing)", "(other)"]),
)
COLUMN = st.lists(CELL, min_size=1, max_size=40)


@pytest.fixture(autouse=True)
def _every_column_at_once():
    """Columns of any length read in Arrow (outside the tests only those of ``at_once`` cells or more)."""
    with mock.patch.object(Cells, "at_once", 1):
        yield


def _per_cell():
    """Every column read one cell at a time (the reference)."""
    return mock.patch.object(Cells, "text", lambda self: None)


@settings(max_examples=200, deadline=None)
@given(COLUMN, st.sampled_from([frozenset(), frozenset({"?"}), frozenset({"unknown", "-"})]))
def test_missing_cells_numbers_and_markers_are_the_ones_each_cell_reads_as(cells, extra):
    assert absent_of(Cells(cells), extra).tolist() == [is_missing(c, extra) for c in cells]
    read = Cells(cells).numbers()
    if read is not None:  # a column Arrow reads: each cell a number exactly where Python's float reads one
        for cell, is_number, value in zip(cells, *read):
            try:
                expected = float(cell)
            except ValueError:
                assert not is_number, cell
                continue
            assert is_number and (value == expected or (value != value and expected != expected)), cell
    with _per_cell():
        slow = number_markers(Cells(cells), extra)
    assert number_markers(Cells(cells), extra) == slow


def _outcome(fn):
    try:
        return fn()
    except DataError as e:
        return str(e)


def _same(fast, slow) -> None:
    if isinstance(fast, str) or isinstance(slow, str):
        assert fast == slow
    elif isinstance(fast, np.ndarray):
        np.testing.assert_array_equal(fast, slow)
    else:
        np.testing.assert_array_equal(fast.x, slow.x)
        np.testing.assert_array_equal(fast.y, slow.y)
        assert fast.preprocess == slow.preprocess


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), n=st.integers(3, 30),
       missing=st.sampled_from(["median", "most_frequent", "constant", "error", "drop"]),
       embed_above=st.sampled_from([2, 50]), fold_case=st.booleans())
def test_a_table_loads_and_encodes_as_it_does_cell_by_cell(data, n, missing, embed_above, fold_case):
    """The loader on a table of drawn cells, then the fitted columns on new rows (predict): the same
    matrix, preprocessing and target, or the same one-line error, with and without Arrow."""
    def table(rows: int) -> dict[str, list[str]]:
        return {**{c: data.draw(st.lists(CELL, min_size=rows, max_size=rows)) for c in "abc"},
                "y": [str(i % 2) for i in range(rows)]}

    train, new = table(n), table(max(1, n // 2))

    def load():
        return table_dataset({c: list(v) for c, v in train.items()}, "t", "y", missing=missing,
                             embed_above=embed_above, fold_case=fold_case)

    fast = _outcome(load)
    with _per_cell():
        slow = _outcome(load)
    _same(fast, slow)
    if isinstance(fast, str):
        return
    pre = fast.preprocess

    def encode():
        return encode_table(pre["columns"], {c: list(v) for c, v in new.items()}, "new", pre.get("derived"),
                            trained=True)

    fast_new = _outcome(encode)
    with _per_cell():
        slow_new = _outcome(encode)
    _same(fast_new, slow_new)


FIELD = st.text(alphabet=st.sampled_from(list('ab1 ,"\n\r\t.-é')), max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(FIELD, min_size=3, max_size=3), min_size=1, max_size=8),
       quote_all=st.booleans(), bom=st.booleans())
def test_a_csv_file_reads_the_same_cells_with_arrow_as_with_the_csv_module(tmp_path_factory, rows, quote_all, bom):
    import csv

    from netwright.data import tabular

    path = tmp_path_factory.mktemp("csv") / "t.csv"
    with open(path, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as fh:
        csv.writer(fh, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL).writerows([["a", " b", "c"], *rows])
    fast = _outcome(lambda: tabular.read_csv(path))
    with mock.patch.object(tabular, "_arrow_csv", lambda *a: None):
        slow = _outcome(lambda: tabular.read_csv(path))
    assert fast == slow
