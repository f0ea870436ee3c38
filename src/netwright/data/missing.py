"""Missing cells in tables: which cells are missing, how each column fills them, fitted on the
train split only and applied the same way by every verb that reads a table.

A table column's entry in ``preprocess["columns"]`` carries its strategy (``missing``), whether a
0/1 missing-indicator column follows it (``indicator``) and, once fitted, its ``fill``: the value
(numeric) or one-hot row (categorical) that a missing cell becomes. A missing cell is encoded as
NaN; :func:`impute` replaces it, so ``normalize`` and everything after it see complete rows.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from .cells import Cells
from .layout import column_blocks

Strategy = Literal["median", "mean", "most_frequent", "constant", "iterative", "drop", "error"]

# what counts as an empty cell: pandas' default ``na_values``, and the empty string
MISSING_TOKENS = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
    "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})

MISSING_CATEGORY = "(missing)"  # a categorical column's own category for its missing cells
# how each strategy fills a missing cell, in the lines that say so
FILLED_WITH = {"median": "the train median", "mean": "the train mean", "iterative": "iterative regression",
               "most_frequent": "the most frequent train value", "constant": "a constant",
               "category": f"a '{MISSING_CATEGORY}' category"}
OTHER_CATEGORY = "(other)"  # of a column given as an index: a category first seen after training


def is_missing(cell: Any, extra: frozenset[str] = frozenset()) -> bool:
    """Whether a raw cell (a CSV string, a JSON value, None, a float NaN) is a missing value."""
    if cell is None:
        return True
    if isinstance(cell, float):
        return cell != cell
    text = str(cell).strip()
    return text in MISSING_TOKENS or text in extra


def absent_of(cells: Any, extra: frozenset[str] = frozenset()) -> np.ndarray:
    """:func:`is_missing` of every cell of a column at once: a float array (a derived column) is
    missing where it is NaN; cells of text are compared once each with the markers."""
    if isinstance(cells, np.ndarray) and cells.dtype.kind == "f":
        return np.isnan(cells)
    if isinstance(cells, Cells) and (absent := cells.absent(MISSING_TOKENS | extra)) is not None:
        return absent
    return np.fromiter((is_missing(c, extra) for c in cells), dtype=bool, count=len(cells))


# a column of numbers may mark a missing cell its own way ('?', '-', 'unknown'): read as missing when
# such cells are few (at most this share of the filled cells, or MARKERS_FEW in a small table)
MARKERS_SHARE, MARKERS_FEW = 0.01, 2


def number_markers(cells: list[Any], extra: frozenset[str] = frozenset()) -> dict[str, int]:
    """The cells of a column of numbers that mark a missing value in the data's own way: text without
    a digit ('?', '-', 'unknown', 'not given'), few of them (at most 1% of the filled cells, or 2 in
    a small table, and under a tenth) and every other filled cell a number. Marker -> how many
    cells hold it; empty when the column is no such column (numbers throughout, or text)."""
    if isinstance(cells, np.ndarray) and cells.dtype.kind == "f":
        return {}  # numbers throughout (a derived column)
    if isinstance(cells, Cells) and (read := cells.numbers()) is not None:
        return _markers_read(cells, read[0], absent_of(cells, extra))
    markers: dict[str, int] = {}
    numbers = 0
    for cell in cells:
        if is_missing(cell, extra):
            continue
        text = cell_text(cell)
        try:
            float(text)
            numbers += 1
            continue
        except ValueError:
            pass
        if any(ch.isdigit() for ch in text):
            return {}  # '12 kg', '1O5': a value written wrongly, not a marker
        markers[text] = markers.get(text, 0) + 1
    few = sum(markers.values())
    filled = numbers + few
    if not numbers or few > max(MARKERS_FEW, MARKERS_SHARE * filled) or few * 10 >= filled:
        return {}
    return markers


def _markers_read(cells: Cells, numbers: np.ndarray, absent: np.ndarray) -> dict[str, int]:
    """:func:`number_markers` of a column read at once (:meth:`Cells.numbers`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    others = ~numbers & ~absent
    count, few = int((numbers & ~absent).sum()), int(others.sum())
    filled = count + few
    if not count or few > max(MARKERS_FEW, MARKERS_SHARE * filled) or few * 10 >= filled:
        return {}
    texts = cells.text().filter(pa.array(others))
    if pc.any(pc.match_substring_regex(texts, r"\d")).as_py():
        return {}  # '12 kg', '1O5': a value written wrongly, not a marker
    return {v["values"]: v["counts"] for v in pc.value_counts(texts).to_pylist()}


def describe_markers(column: str, markers: dict[str, int]) -> str:
    """``spend: 12 cells read as missing ('?' 9, 'unknown' 3) ...``: the note a loader prints."""
    listed = ", ".join(f"'{m}' {n}" for m, n in sorted(markers.items(), key=lambda kv: (-kv[1], kv[0])))
    return (f"{column}: {count(sum(markers.values()), 'cell')} without a number read as missing ({listed}); "
            f"listing them in data.na_values ({sorted(markers)}) makes it explicit")


def cell_text(cell: Any) -> str:
    """A raw cell as the text a CSV would hold: a JSON or Parquet value (None, a bool, a number)
    reads the same wherever it came from (a number as Python writes it, a bool as True/False)."""
    if cell is None or (isinstance(cell, float) and cell != cell):
        return ""
    return repr(cell) if isinstance(cell, float) else str(cell).strip()


def strategy_of(missing: str | dict[str, str], column: str) -> str:
    """A column's strategy from ``data.missing``: one name for every column, or a map of column ->
    name in which ``default`` (else ``median``) covers the columns it does not name."""
    if isinstance(missing, str):
        return missing
    return missing.get(column, missing.get("default", "median"))


def fills_value(col: dict[str, Any]) -> bool:
    """Whether a column's missing cells become a fitted value (NaN until :func:`impute`), as opposed
    to a categorical column's own ``(missing)`` category, a dropped row or an error."""
    strategy = col.get("missing", "error")
    if col["kind"] == "numeric":
        return strategy in ("median", "mean", "most_frequent", "constant", "iterative")
    return col["kind"] == "categorical" and strategy == "most_frequent"


def fit_imputation(pre: dict[str, Any], x_train: np.ndarray) -> dict[str, Any]:
    """Each filled column's ``fill`` from the train rows: median, mean, most frequent value or the
    constant (numeric), the most frequent category (categorical). A column with no
    value in the train rows fills with 0 (numeric) or the first category."""
    if pre.get("kind") != "table" or not any(fills_value(c) for c in pre["columns"]):
        return pre
    pre = dict(pre)
    columns = []
    for col, at in column_blocks(pre["columns"]):
        col, width = dict(col), at.stop - at.start
        block = x_train[:, at]
        if fills_value(col):
            seen = block[~np.isnan(block).any(axis=1)]
            if col["kind"] == "numeric":
                values = seen[:, 0].astype(np.float64)
                strategy = col["missing"]
                if strategy == "constant":
                    fill = float(col.get("fill_value", 0.0))
                elif len(values) == 0:
                    fill = 0.0
                elif strategy == "median":
                    fill = float(np.median(values))
                elif strategy in ("mean", "iterative"):  # iterative: the mean starts the rounds
                    fill = float(values.mean())
                else:
                    uniq, counts = np.unique(values, return_counts=True)
                    fill = float(uniq[np.argmax(counts)])
                col["fill"] = fill
            else:
                counts = seen.sum(axis=0) if len(seen) else np.zeros(width)
                col["fill"] = col["categories"][int(np.argmax(counts))]
        columns.append(col)
    pre["columns"] = columns
    iterative = [at.start for col, at in column_blocks(columns) if col["kind"] == "numeric"
                 and col.get("missing") == "iterative"]
    if iterative:
        pre["iterative"] = fit_iterative(x_train[:, iterative], iterative)
    return pre


def fit_iterative(x: np.ndarray, positions: list[int], rounds: int = 10) -> dict[str, Any]:
    """scikit-learn's ``IterativeImputer`` (each column regressed on the others by Bayesian ridge, in
    rounds, starting from the column means) fitted on the train rows, kept as its linear steps so
    that applying it needs numpy only (:func:`apply_iterative` repeats ``IterativeImputer.transform``)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer

    imputer = IterativeImputer(max_iter=rounds, random_state=0, keep_empty_features=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        imputer.fit(x.astype(np.float64))
    steps = [{"target": int(t.feat_idx), "inputs": [int(i) for i in t.neighbor_feat_idx],
              "coef": [float(c) for c in t.estimator.coef_], "intercept": float(t.estimator.intercept_)}
             for t in imputer.imputation_sequence_]
    return {"positions": positions, "steps": steps, "rounds": int(imputer.n_iter_),
            "min": [float(v) for v in np.broadcast_to(imputer._min_value, len(positions))],
            "max": [float(v) for v in np.broadcast_to(imputer._max_value, len(positions))]}


def apply_iterative(model: dict[str, Any], x: np.ndarray, absent: np.ndarray) -> np.ndarray:
    """The fitted rounds over ``x`` (the iterative columns, missing cells already at the train means);
    ``absent`` marks the cells to replace."""
    x = x.astype(np.float64)
    for step in model["steps"]:
        t = step["target"]
        rows = absent[:, t]
        if rows.any():
            values = x[np.ix_(rows, step["inputs"])] @ np.asarray(step["coef"]) + step["intercept"]
            x[rows, t] = np.clip(values, model["min"][t], model["max"][t])
    return x


def impute(pre: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Replace the NaN cells of filled columns with their fitted ``fill`` (a no-op for other data)."""
    if pre.get("kind") != "table" or not any("fill" in c for c in pre["columns"]) or not np.isnan(x).any():
        return x
    x, absent = x.copy(), np.isnan(x)
    for col, at in column_blocks(pre["columns"]):
        if "fill" in col:
            block = x[:, at]
            rows = np.isnan(block).any(axis=1)
            if col["kind"] == "numeric":
                block[rows, 0] = col["fill"]
            else:
                block[rows] = 0.0
                block[rows, col["categories"].index(col["fill"])] = 1.0
    if "iterative" in pre:
        at = pre["iterative"]["positions"]
        x[:, at] = apply_iterative(pre["iterative"], x[:, at], absent[:, at])
    return x


def describe(pre: dict[str, Any]) -> str | None:
    """One line on what was done with the missing cells of the loaded table (``None`` when it had none)."""
    facts = pre.get("missing") or {}
    cells, dropped = facts.get("cells", 0), facts.get("dropped_rows", {})
    if not cells and not dropped:
        return None
    used = sorted({FILLED_WITH[s] for s in facts.get("strategies", {}).values()})
    columns = len(facts.get("strategies", {}))
    parts = [f"{count(cells, 'missing cell')} in {count(columns, 'column')} filled with {' or '.join(used)}"
             ] if cells else []
    if facts.get("indicators"):
        parts.append(count(len(facts["indicators"]), "missing-indicator column") + " added")
    parts += [f"{count(n, 'row')} dropped ({why})" for why, n in dropped.items()]
    return "; ".join(parts)


def count(n: int, what: str) -> str:
    """``1 missing cell``, ``3 missing cells``."""
    return f"{n} {what}" + ("" if n == 1 else "s")
