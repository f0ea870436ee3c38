"""Raw input -> model input, the same way at training and at prediction time.

A dataset's ``preprocess`` dict (saved in ``data.json``) says what kind of raw input
it takes and holds the normalisation statistics of the train split. ``encode`` turns
raw input of that kind into un-normalised arrays, ``normalize`` applies the
statistics; ``predict`` and the loaders both go through these two functions.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import DataError
from .layout import column_blocks, column_width
from .cells import Cells, cells_of
from .missing import MISSING_CATEGORY, MISSING_TOKENS, OTHER_CATEGORY, absent_of, cell_text, impute

# --------------------------------------------------------------------------- tables


def encode_table(columns: list[dict[str, Any]], table: dict[str, list[Any]], source: str,
                 derived: list[dict[str, Any]] | None = None, trained: bool = False) -> np.ndarray:
    """Encode a column table into a float32 feature matrix ``(N, F)``.

    Numeric columns are parsed as floats; categorical columns become one-hot blocks. A missing
    cell of a column that fills it (``netwright.data.missing``) is NaN until ``impute``; a column
    with ``indicator`` is followed by a 0/1 column that marks its missing cells. ``trained``: the
    rows are for a trained model (predict), so a message offers what can be done there.
    """
    from .derive import apply

    table = cells_of(apply(table, derived, source))  # dates into their parts (preprocess["derived"])
    n = len(next(iter(table.values()))) if table else 0
    blocks = []
    for col in columns:
        name = col["name"]
        if name not in table:
            raise DataError(f"{source}: missing column '{name}'; the model was trained on columns "
                            f"{', '.join(c['name'] for c in columns)}")
        values = table[name]
        strategy = col.get("missing", "error")  # runs written before missing-value handling: "error"
        absent = np.zeros(n, dtype=bool)
        if strategy != "error":
            absent = absent_of(values, frozenset(col.get("na_values", ())))
            if strategy == "drop" and absent.any():
                raise DataError(f"{source}: column '{name}' row {int(np.argmax(absent)) + 1} is missing, and this run "
                                "was trained with data.missing: drop there (nothing to fill it with); fill the cell")
        if col["kind"] == "numeric":
            cells = _read_numbers(values, absent)
            if cells is None:
                cells = [np.nan if a else v for v, a in zip(values, absent)]
            blocks.append(parse_numeric(cells, name, source, allow_nan=bool(absent.any()), trained=trained)[:, None])
        else:
            blocks.append(_encode_categories(col, values, absent, source))
        if col.get("indicator"):
            blocks.append(absent.astype(np.float32)[:, None])
    return _joined(blocks, n)


def _joined(blocks: list[np.ndarray], n: int, rows: int = 8192) -> np.ndarray:
    """The blocks side by side as one float32 matrix, filled ``rows`` rows at a time (what is
    written stays in the cache: twice as fast as one concatenation of a wide table)."""
    out = np.empty((n, sum(b.shape[1] for b in blocks)), dtype=np.float32)
    for first in range(0, n, rows):
        at = 0
        for b in blocks:
            out[first:first + rows, at:at + b.shape[1]] = b[first:first + rows]
            at += b.shape[1]
    return out


def _read_numbers(values: Any, absent: np.ndarray) -> np.ndarray | None:
    """A column's numbers with NaN where a cell is missing: the array itself (a derived column), or
    its cells read at once (:class:`Cells`) when every filled cell is a finite number; None
    otherwise (read cell by cell, which names the offending row)."""
    if isinstance(values, np.ndarray):
        return values
    numbers = values.filled_numbers(absent) if isinstance(values, Cells) else None
    return numbers if numbers is not None and np.isfinite(numbers[~absent]).all() else None


def category_key(col: dict[str, Any]) -> Any:
    """How a cell is matched to a column's categories: lower-cased where the column folds case
    (``fold_case``), as it is otherwise (Arrow's ``utf8_lower`` is the same lower-casing)."""
    return str.lower if col.get("fold_case") else (lambda v: v)


def _encode_categories(col: dict[str, Any], values: list[Any], absent: np.ndarray, source: str) -> np.ndarray:
    """One-hot rows (or, for ``id`` columns, one column of category indices); a missing cell is the
    column's ``(missing)`` category, NaN (filled later with the most frequent one) or, when the
    training data had no missing cell there, a row of zeros. A category first seen here is
    ``(other)`` in an embedded column and a row of zeros (none of the known ones) in a one-hot
    one; only an ``id`` column without ``(other)`` (users, items) refuses it."""
    name, cats, n = col["name"], col["categories"], len(values)
    read = _category_codes(col, values, absent) if isinstance(values, Cells) else None
    if read is not None:
        return _category_block(col, *read, absent)
    index = {c: i for i, c in enumerate(cats)}
    key_of = category_key(col)
    fold = {key_of(c): c for c in cats} if col.get("fold_case") else None  # 'BASIC' -> 'basic'
    codes = np.zeros(n, dtype=np.int64)
    blank = np.zeros(n, dtype=bool)  # missing cells with no category of their own
    for row, v in enumerate(values):
        key = MISSING_CATEGORY if absent[row] else cell_text(v)
        if fold is not None and not absent[row]:
            key = fold.get(key_of(key), key)
        if key not in index and OTHER_CATEGORY in index and not absent[row]:
            key = OTHER_CATEGORY  # an embedded column: a new category is '(other)'
        if key not in index:
            if absent[row] or col["kind"] == "categorical":  # one-hot: a new category is none of the known ones
                blank[row] = True
                continue
            known = ", ".join(cats[:20]) + (f", ... ({len(cats)} in all)" if len(cats) > 20 else "")
            raise DataError(f"{source}: column '{name}' row {row + 1} holds '{key}', a category not seen "
                            f"in training; known: {known}")
        codes[row] = index[key]
    return _category_block(col, codes, blank, absent)


def _category_codes(col: dict[str, Any], values: Cells, absent: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(codes, blank) of ``_encode_categories`` from the column's Arrow text, or None where it is
    read cell by cell (no Arrow text, or a new category that an ``id`` column refuses)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = values.text()
    if text is None:
        return None
    cats = col["categories"]
    if col.get("fold_case"):  # a cell matches a category by its lower case ('BASIC' -> 'basic')
        text = pc.utf8_lower(text)
        keys = [c.lower() for c in cats]
    else:
        keys = list(cats)
    if len(set(keys)) < len(keys):
        return None  # a category twice (a cell that reads '(missing)'): the cell path decides which
    found = pc.index_in(text, value_set=pa.array(keys, pa.string())).to_numpy(zero_copy_only=False)
    known = ~np.isnan(found) if found.dtype.kind == "f" else np.ones(len(found), dtype=bool)  # NaN: not found
    codes = np.where(known, np.nan_to_num(found), 0).astype(np.int64)
    new = ~known & ~absent
    if new.any():
        if OTHER_CATEGORY in cats:
            codes[new] = cats.index(OTHER_CATEGORY)
        elif col["kind"] != "categorical":
            return None  # an id column refuses it, naming the row
    blank = new & (OTHER_CATEGORY not in cats)
    if MISSING_CATEGORY in cats:
        codes[absent] = cats.index(MISSING_CATEGORY)
    else:
        blank = blank | absent
    codes[blank] = 0
    return codes, blank


def _category_block(col: dict[str, Any], codes: np.ndarray, blank: np.ndarray, absent: np.ndarray) -> np.ndarray:
    """One-hot rows (an ``id`` column: its column of indices) from the codes, blank rows zero (NaN
    where a missing cell is filled later)."""
    n = len(codes)
    if col["kind"] == "id":  # one column of category indices (users, items: too many for one-hot)
        return codes[:, None].astype(np.float32)
    onehot = np.zeros((n, len(col["categories"])), dtype=np.float32)
    onehot[np.arange(n), codes] = 1.0
    onehot[blank] = 0.0  # a new category: a row of zeros (unseen_note says so)
    onehot[blank & absent] = np.nan if col.get("missing") == "most_frequent" else 0.0
    return onehot


def encode_arrow(columns: list[dict[str, Any]], table: Any, source: str,
                 derived: list[dict[str, Any]] | None = None, trained: bool = False) -> np.ndarray:
    """``encode_table`` for an Arrow table, column by column in Arrow where a column's type allows
    (numbers into a numeric column, text or whole numbers into a categorical one) and through the
    cells otherwise; the result is the same as ``encode_table(columns, cells(table), ...)``, and so
    is every error (an offending column is encoded through its cells to name the row)."""
    if derived:  # dates and free text are taken apart from Python values
        return encode_table(columns, arrow_cells(table), source, derived, trained)
    n, blocks = table.num_rows, []
    for col in columns:
        if col["name"] not in table.column_names:
            return encode_table(columns, {}, source)  # the missing-column message
        fast = _arrow_column(col, table.column(col["name"]), n)
        if fast is None:
            fast = encode_table([col], arrow_cells(table, [col["name"]]), source, trained=trained)
        blocks.append(fast)
    return np.concatenate(blocks, axis=1).astype(np.float32) if blocks else np.zeros((n, 0), np.float32)


def arrow_absent(column: Any) -> np.ndarray:
    """Which cells of an Arrow column are missing, as ``is_missing`` reads them (in Arrow, not Python)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    missing = pc.is_null(column)
    if pa.types.is_floating(column.type):
        missing = pc.or_(missing, pc.is_nan(column))
    elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        missing = pc.or_(missing, pc.is_in(pc.utf8_trim_whitespace(column), value_set=pa.array(sorted(MISSING_TOKENS))))
    return np.asarray(pc.fill_null(missing, True).to_numpy(zero_copy_only=False), dtype=bool)


def arrow_cells(table: Any, names: list[str] | None = None) -> dict[str, list[str]]:
    """An Arrow table (or its columns ``names``) as ``{column: [cell, ...]}``, each value read as
    the csv loader reads it."""
    return {name: [cell_text(v) for v in table.column(name).to_pylist()] for name in names or table.column_names}


def _arrow_column(col: dict[str, Any], column: Any, n: int) -> np.ndarray | None:
    """One column's block (its indicator included) computed in Arrow, or ``None`` where only the
    cell-by-cell path gives the same answer (another type, or a cell that is an error)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    strategy, kind = col.get("missing", "error"), col["kind"]
    if col.get("na_values"):
        return None
    integer = pa.types.is_integer(column.type)
    text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    if kind == "numeric" and (integer or pa.types.is_floating(column.type)):
        values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)  # nulls read as NaN
        values = np.asarray(values, dtype=np.float64)
        absent = np.isnan(values)
        if (strategy in ("error", "drop") and absent.any()) or np.isinf(values).any():
            return None
        block = values.astype(np.float32)[:, None]
    elif kind in ("categorical", "id") and (integer or text):
        trimmed = pc.utf8_trim_whitespace(column) if text else pc.cast(column, pa.string())
        absent = arrow_absent(column)
        if strategy == "error":
            absent[:] = False  # a missing cell is then looked up as its text, as the cell path does
            if pc.any(pc.is_null(trimmed)).as_py():
                return None
        elif strategy == "drop" and absent.any():
            return None
        cats = col["categories"]
        if col.get("fold_case"):  # the same lower-casing as the cell path's str.lower
            codes = pc.index_in(pc.utf8_lower(trimmed), value_set=pa.array([c.lower() for c in cats], pa.string()))
        else:
            codes = pc.index_in(trimmed, value_set=pa.array(cats, pa.string()))
        codes = np.asarray(pc.fill_null(codes, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
        index = {c: i for i, c in enumerate(cats)}
        codes[absent] = index.get(MISSING_CATEGORY, -1)
        unknown = (codes < 0) & ~absent
        if unknown.any():
            if OTHER_CATEGORY not in index:
                return None  # the unknown category's message, with its row
            codes[unknown] = index[OTHER_CATEGORY]
        blank = codes < 0
        if kind == "id":
            block = np.where(blank, 0, codes).astype(np.float32)[:, None]
        else:
            block = np.zeros((n, len(cats)), dtype=np.float32)
            block[np.arange(n)[~blank], codes[~blank]] = 1.0
            block[blank] = np.nan if strategy == "most_frequent" else 0.0
    else:
        return None
    if col.get("indicator"):
        block = np.concatenate([block, absent.astype(np.float32)[:, None]], axis=1)
    return block


def table_feature_names(columns: list[dict[str, Any]]) -> list[str]:
    """Model input feature names: numeric and id columns as is, one-hot columns as ``col=value``,
    missing indicators as ``col_missing``."""
    names = []
    for col in columns:
        if col["kind"] in ("numeric", "id"):
            names.append(col["name"])
        else:
            names += [f"{col['name']}={c}" for c in col["categories"]]
        if col.get("indicator"):
            names.append(f"{col['name']}_missing")
    return names


def parse_numeric(values: list[Any], name: str, source: str, allow_nan: bool = False,
                  trained: bool = False) -> np.ndarray:
    """Parse one column as float32; text, empty cells, NaN (unless ``allow_nan``: a missing cell
    to fill) and inf fail with the row (``trained``: rows for a trained model, whose spec is
    settled: the message says what predict can do)."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":  # numbers already (a derived column)
        values = np.asarray(values, dtype=np.float32)
        if (allow_nan or not np.isnan(values).any()) and not np.isinf(values).any():
            return values
        values = values.tolist()  # through the cells below, to name the row
    out = np.empty(len(values), dtype=np.float32)
    for row, v in enumerate(values):
        try:
            f = float(v)
            if allow_nan and f != f:
                out[row] = f
                continue
        except (TypeError, ValueError):
            shown = str(v).strip()
            if not shown:
                raise DataError(f"{source}: numeric column '{name}' row {row + 1} is empty and this run fills no "
                                "missing cells there; fill the cell") from None
            if trained:
                raise DataError(f"{source}: numeric column '{name}' row {row + 1} holds text '{shown}'; give a number, "
                                "or an empty cell to have it filled as in training (netwright predict --on-error null "
                                "predicts the other rows)") from None
            raise DataError(f"{source}: numeric column '{name}' row {row + 1} holds text '{shown}'; if it marks a "
                            f"missing value, add it to data.na_values (e.g. na_values: ['{shown}']), otherwise fix "
                            "the value (list the column under data.categorical only if it holds categories)") from None
        if not math.isfinite(f):
            hint = "set data.missing to fill missing cells" if f != f else "fill or drop non-finite values"
            raise DataError(f"{source}: column '{name}' row {row + 1} is {v}; {hint}")
        out[row] = f
    return out


# --------------------------------------------------------------------------- arrays


def check_finite(x: np.ndarray, what: str, allow_nan: bool = False) -> None:
    """Fail with the first offending index if ``x`` holds inf or NaN (NaN allowed with ``allow_nan``:
    missing table cells, filled later)."""
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        wrong = np.isinf(x) if allow_nan else ~np.isfinite(x)
        if not wrong.any():
            return
        bad = np.argwhere(wrong)[0]
        value = x[tuple(bad)]
        raise DataError(f"{what} holds {value} at index {tuple(int(i) for i in bad)}; fill or drop non-finite values")


def encode_array(pre: dict[str, Any], x: np.ndarray, source: str) -> np.ndarray:
    """Bring a raw array to ``(N, *shape)``: one sample or a batch, with or without a
    single channel axis, or flattened rows; anything else fails with the expected shape."""
    expected = tuple(pre["shape"])
    x = np.asarray(x)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise DataError(f"{source}: expected numbers, got an array of {x.dtype}")
    size = int(np.prod(expected))
    if x.shape == expected:
        x = x[None]
    elif expected[0] == 1 and x.shape == expected[1:]:
        x = x.reshape((1, *expected))
    elif expected[0] == 1 and x.shape[1:] == expected[1:]:
        x = x[:, None]
    elif x.ndim == 2 and x.shape[1] == size and x.shape[1:] != expected:
        x = x.reshape((-1, *expected))
    if x.shape[1:] != expected:
        raise DataError(f"{source}: each input must have shape {expected} (or {size} values per row), "
                        f"got an array of shape {tuple(x.shape)}")
    x = x.astype(np.float32)
    check_finite(x, source)
    return x


def encode_image(pre: dict[str, Any], image: Any, source: str) -> np.ndarray:
    """A PIL image -> ``(1, C, H, W)`` in the dataset's raw pixel range."""
    channels, (h, w) = pre["shape"][0], pre["shape"][1:]
    image = image.convert("L" if channels == 1 else "RGB")
    if image.size != (w, h):
        if pre.get("resize"):
            from .images import fit_image

            image = fit_image(image, h, w, pre.get("fit", "stretch"))
        else:
            raise DataError(f"{source}: image is {image.size[0]}x{image.size[1]} (WxH) but the model takes "
                            f"{w}x{h}; resize it first")
    arr = np.asarray(image, dtype=np.float32)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    lo, hi = pre.get("range", (0.0, 255.0))
    return (lo + arr / 255.0 * (hi - lo))[None].astype(np.float32)


_TOKENIZERS: dict[str, Any] = {}  # by digest: a served model tokenises every request with the same one


def encode_texts(pre: dict[str, Any], texts: list[str], source: str) -> np.ndarray:
    """Texts -> token ids ``(N, L)`` with the run's own tokenizer, cut or padded to ``L``
    (models trained on labelled text)."""
    from .tokenizer import pad
    from .tokenizer import from_dict

    if not texts or not all(t.strip() for t in texts):
        raise DataError(f"{source}: empty text; give some words to classify")
    sha = pre["tokenizer_sha"]
    if sha not in _TOKENIZERS:
        _TOKENIZERS[sha] = from_dict(pre["tokenizer"])
    tok, length = _TOKENIZERS[sha], pre["shape"][0]
    return np.array([pad(tok.encode(t, strict=False), length) for t in texts], dtype=np.int64)


def encode_text(pre: dict[str, Any], text: str, source: str) -> np.ndarray:
    """The last ``length`` characters of ``text`` as token ids ``(1, L)``."""
    vocab = {c: i for i, c in enumerate(pre["vocab"])}
    length = pre["shape"][0]
    if len(text) < length:
        raise DataError(f"{source}: needs at least {length} characters of text, got {len(text)}")
    unknown = sorted({c for c in text[-length:] if c not in vocab})
    if unknown:
        raise DataError(f"{source}: characters not in the training vocabulary: {''.join(unknown)!r}")
    return np.array([[vocab[c] for c in text[-length:]]], dtype=np.int64)


# --------------------------------------------------------------------------- normalisation


QUANTILES = 101  # a quantile transform's reference points: the train split's 0th to 100th percentile


def fit_transforms(pre: dict[str, Any], x_train: np.ndarray) -> dict[str, Any]:
    """A table's ``quantile`` columns with the train split's quantiles (``log`` needs none)."""
    if not any(c.get("transform") == "quantile" for c in pre["columns"]):
        return dict(pre)
    columns = []
    for col, at in column_blocks(pre["columns"]):
        if col.get("transform") == "quantile":
            values = x_train[:, at.start].astype(np.float64)
            values = values[np.isfinite(values)]
            q = np.quantile(values, np.linspace(0, 1, QUANTILES)) if len(values) else np.zeros(QUANTILES)
            col = {**col, "quantiles": q.tolist()}
        columns.append(col)
    return {**pre, "columns": columns}


def apply_transforms(pre: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """A table's numeric columns through their ``transform``: log is sign(x) log(1 + |x|);
    quantile is the value's place among the train split's quantiles, 0 to 1 (ties averaged
    from both sides, as scikit-learn's ``QuantileTransformer`` does)."""
    if pre.get("kind") != "table" or not any(c.get("transform") for c in pre["columns"]):
        return x
    x = np.array(x, dtype=np.float32)
    for col, at in column_blocks(pre["columns"]):
        v = x[:, at.start].astype(np.float64)
        if col.get("transform") == "log":
            x[:, at.start] = np.sign(v) * np.log1p(np.abs(v))
        elif col.get("transform") == "quantile":
            q, r = np.asarray(col["quantiles"]), np.linspace(0, 1, QUANTILES)
            ranks = 0.5 * (np.interp(v, q, r) - np.interp(-v, -q[::-1], -r[::-1]))
            x[:, at.start] = np.where(v <= q[0], 0.0, np.where(v >= q[-1], 1.0, ranks))  # the ends as they are
    return x


def fit_normalization(pre: dict[str, Any], x_train: np.ndarray) -> dict[str, Any]:
    """Mean and std per channel (images, sequences) or per numeric feature (tables, after each
    column's ``transform``)."""
    pre = fit_transforms(pre, x_train) if pre["kind"] == "table" else dict(pre)
    if pre["kind"] == "tokens" or pre.get("normalize") is False:  # token ids; inputs a loader keeps as they are
        return pre
    if pre["kind"] == "table":
        x_train = apply_transforms(pre, x_train)
        numeric = numeric_mask(pre)
        mean = np.where(numeric, x_train.mean(axis=0), 0.0)
        std = np.where(numeric, x_train.std(axis=0), 1.0)
    else:
        axes = (0, *range(2, x_train.ndim))
        mean, std = x_train.mean(axis=axes), x_train.std(axis=axes)
    std = np.where(std < 1e-8, 1.0, std)
    pre["mean"], pre["std"] = mean.astype(float).tolist(), std.astype(float).tolist()
    return pre


def normalize(pre: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Fill missing table cells, apply each column's transform and the stored statistics (a no-op
    when there are none)."""
    x = apply_transforms(pre, impute(pre, x))
    if "mean" not in pre:
        return x
    mean, std = np.asarray(pre["mean"], np.float32), np.asarray(pre["std"], np.float32)
    if pre["kind"] != "table":
        shape = (1, -1) + (1,) * (x.ndim - 2)
        mean, std = mean.reshape(shape), std.reshape(shape)
    return ((x - mean) / std).astype(np.float32)


def numeric_mask(pre: dict[str, Any]) -> np.ndarray:
    """Which model input columns are standardised: numeric ones, not one-hot or indicator columns."""
    mask = []
    for col in pre["columns"]:
        mask += [True] if col["kind"] == "numeric" else [False] * column_width(col)
        mask += [False] if col.get("indicator") else []
    return np.array(mask, dtype=bool)
