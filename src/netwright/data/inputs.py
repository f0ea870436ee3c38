"""Raw inputs (CSV, NumPy, image, sound, text) -> normalised model inputs, by a run's saved
preprocessing (``data.json``), so inputs are given as they come: CSV rows with the training
column names, pixel values in the data's own range, a PNG of the trained size, plain text."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .arrays import load_array_file
from .chunks import ArrowColumns
from .derive import column_sources
from .images import IMAGE_SUFFIXES, open_image
from .info import DataInfo
from .missing import FILLED_WITH, count, is_missing
from .preprocess import (category_key, encode_array, encode_arrow, encode_image, encode_table, encode_text, encode_texts,
                         normalize)
from ..errors import DataError
from .speech import encode_wav
from .tabular import read_csv


def encode_inputs(info: DataInfo, inputs: Any, source: str = "input") -> np.ndarray:
    """Raw inputs -> normalised model inputs ``(N, *input_shape)``.

    ``inputs`` is a file path (``.csv``, ``.npy``, ``.npz``, an image, ``.wav``, ``.txt``), a column
    table ``{name: values}``, a list of records or a pandas/polars DataFrame (tabular data), a
    string (text data) or an array.
    """
    pre = info.preprocess
    kind = pre["kind"]
    is_path = isinstance(inputs, os.PathLike) or (isinstance(inputs, str) and (kind != "tokens" or Path(inputs).is_file()))
    if is_path:
        path = Path(inputs)
        source = str(path)
        suffix = path.suffix.lower()
        if path.is_dir():
            raise DataError(f"{path}: a folder; predict every image under it into a file: netwright predict RUN "
                            f"{path} --out predictions.parquet")
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        if suffix == ".csv":
            inputs = _read_csv_inputs(pre, path)
        elif suffix in (".npy", ".npz"):
            loaded = load_array_file(path)
            if isinstance(loaded, dict):
                if len(loaded) != 1 and "x" not in loaded:
                    raise DataError(f"{path}: holds {', '.join(loaded)}; name the inputs 'x'")
                loaded = loaded.get("x", next(iter(loaded.values())))
            inputs = loaded
        elif suffix in IMAGE_SUFFIXES:
            if kind != "image":
                raise DataError(f"{path}: an image, but this model takes {info.modality} inputs")
            return normalize(pre, encode_image(pre, open_image(path), source))
        elif suffix == ".wav":
            if "audio" not in pre:
                raise DataError(f"{path}: a sound file, but this model was not trained on sound")
            return normalize(pre, encode_wav(pre["audio"], path))
        elif suffix == ".txt" or kind == "tokens":
            inputs = path.read_text(encoding="utf-8", errors="replace")
        else:
            hint = (f"; a {suffix} table is predicted into a file: netwright predict RUN {path.name} --out "
                    f"predictions{suffix}") if suffix in (".parquet", ".jsonl") else ""
            raise DataError(f"{path}: unsupported input file; give .csv, .npy, .npz, an image, .wav or .txt{hint}")
    if kind == "tokens":
        if isinstance(inputs, str) and "tokenizer" in pre:  # labelled text: a file holds one text a line
            return encode_texts(pre, [t for t in inputs.splitlines() if t.strip()] if is_path else [inputs], source)
        if isinstance(inputs, str):
            return encode_text(pre, inputs, source)
        ids = np.asarray(inputs)
        if ids.ndim == 1:
            ids = ids[None]
        if not np.issubdtype(ids.dtype, np.integer) or ids.shape[1:] != tuple(pre["shape"]):
            raise DataError(f"{source}: expected integer token ids of shape (N, {pre['shape'][0]})")
        if ids.min() < 0 or ids.max() >= len(info.vocab):
            raise DataError(f"{source}: token ids must be in 0..{len(info.vocab) - 1}")
        return ids.astype(np.int64)
    if kind == "table":
        inputs = _as_columns(inputs)
    if isinstance(inputs, dict):
        if kind != "table":
            raise DataError(f"{source}: a column table, but this model takes {info.modality} inputs")
        if isinstance(inputs, ArrowColumns):  # a chunk of a Parquet file: encoded in Arrow
            x = encode_arrow(pre["columns"], inputs.table, source, pre.get("derived"), trained=True)
        else:
            x = encode_table(pre["columns"], {k: list(np.atleast_1d(v)) for k, v in inputs.items()}, source,
                             pre.get("derived"), trained=True)
    else:
        x = encode_array(pre, inputs, source)
    return normalize(pre, x)


def _as_columns(inputs: Any) -> Any:
    """Rows for a table model as a column table: a pandas or polars DataFrame, or a list of
    records (``[{"age": 41, "plan": "pro"}, ...]``; a key a record leaves out is a missing cell);
    anything else as given."""
    from .torch_data import is_frame

    if is_frame(inputs):
        columns = inputs.to_dict(as_series=False) if hasattr(inputs, "to_arrow") else inputs.to_dict("list")
        return {str(k): list(v) for k, v in columns.items()}
    if isinstance(inputs, list) and inputs and all(isinstance(r, dict) for r in inputs):
        names = list(dict.fromkeys(str(k) for r in inputs for k in r))
        return {n: [r.get(n) for r in inputs] for n in names}
    return inputs


def _read_csv_inputs(pre: dict[str, Any], path: Path) -> Any:
    """Tabular models read named columns; others read rows of numbers (a header row is skipped)."""
    if pre["kind"] == "table":
        return read_csv(path)
    rows = [line.split(",") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    try:
        float(rows[0][0])
    except (ValueError, IndexError):
        rows = rows[1:]
    try:
        return np.array([[float(v) for v in r] for r in rows], dtype=np.float32)
    except ValueError as e:
        raise DataError(f"{path}: expected rows of numbers ({e})") from None


def filled_note(pre: dict[str, Any], table: dict[str, list[Any]]) -> str | None:
    """One line on the missing cells of raw rows that are filled as in training (``None`` when
    there are none): the user learns that a prediction rests on a filled value."""
    sources = column_sources(pre.get("derived"))
    counts: dict[str, int] = {}
    used: set[str] = set()
    for col in pre["columns"]:
        name = sources.get(col["name"], col["name"])
        strategy = col.get("missing", "error")
        if name in counts or strategy not in FILLED_WITH or name not in table:
            continue
        extra = frozenset(col.get("na_values") or ())
        n = sum(is_missing(v, extra) for v in table[name])
        if n:
            counts[name] = n
            used.add(FILLED_WITH[strategy])
    if not counts:
        return None
    names = ", ".join(f"{k} ({v})" for k, v in counts.items())
    return (f"{count(sum(counts.values()), 'missing cell')} filled as in training with {' or '.join(sorted(used))}: "
            f"{names}")


def unseen_note(pre: dict[str, Any], table: dict[str, list[Any]]) -> str | None:
    """One line on the cells of raw rows whose category the training data never had (``None``
    when there are none): a one-hot column reads them as none of its known categories."""
    from .missing import OTHER_CATEGORY, cell_text

    parts = []
    for col in pre["columns"]:
        if col["kind"] != "categorical" or col["name"] not in table:
            continue
        fold = category_key(col)
        known, extra = {fold(c) for c in col["categories"]}, frozenset(col.get("na_values") or ())
        new = [cell_text(v) for v in table[col["name"]] if not is_missing(v, extra) and fold(cell_text(v)) not in known]
        if new:
            shown = ", ".join(f"'{v}'" for v in sorted(set(new))[:5]) + (" ..." if len(set(new)) > 5 else "")
            parts.append(f"{col['name']} ({count(len(new), 'cell')}: {shown})")
    if not parts:
        return None
    return (f"categories not seen in training read as none of the known ones ({OTHER_CATEGORY}): "
            + "; ".join(parts))


def input_fields(pre: dict[str, Any]) -> list[dict[str, Any]]:
    """The fields a table model takes, as the training file had them (a date, not its parts): each
    ``{"name", "type", "default", "choices"}`` with type ``number`` (default: the training median
    where the column fills missing cells, else its training mean), ``date`` or ``datetime`` (default:
    the training median day), ``category`` (choices: the training categories; default: the most
    frequent where known, else the first) or ``text``. The served page is built from it."""
    import datetime as dt

    from .derive import column_sources
    from .layout import column_blocks
    from .missing import MISSING_CATEGORY, OTHER_CATEGORY

    derived = {d["column"]: d for d in pre.get("derived") or [] if d["parts"]}  # dates and text: their own field
    sources = column_sources(pre.get("derived"))
    means = pre.get("mean")
    fields: dict[str, dict[str, Any]] = {}
    for col, at in column_blocks(pre["columns"]):
        name = sources.get(col["name"], col["name"])
        typical = col.get("fill")
        if typical is None and col["kind"] == "numeric" and means is not None and not col.get("transform"):
            typical = float(means[at.start])
        if name in derived:
            d = derived[name]
            field = fields.setdefault(name, {"name": name, "type": "text" if d["kind"] == "text" else
                                             "datetime" if "hour" in d["parts"] else "date", "default": "",
                                             "choices": []})
            if col["name"] == f"{name}.days" and typical is not None:  # days since 1970: the typical day
                when = dt.datetime(1970, 1, 1) + dt.timedelta(days=float(typical))
                field["default"] = when.strftime("%Y-%m-%dT%H:%M" if field["type"] == "datetime" else "%Y-%m-%d")
        elif col["kind"] == "numeric":
            fields[name] = {"name": name, "type": "number", "choices": [],
                            "default": "" if typical is None else float(f"{float(typical):.6g}")}
        else:
            choices = [c for c in col["categories"] if c not in (MISSING_CATEGORY, OTHER_CATEGORY)]
            fields[name] = {"name": name, "type": "category", "choices": choices,
                            "default": typical if typical in choices else (choices[0] if choices else "")}
    return list(fields.values())


def field_errors(pre: dict[str, Any], table: dict[str, list[Any]], source: str) -> list[str]:
    """Every column of a raw table that cannot be read, each with its message (the encoder stops
    at the first): each column is encoded on its own, a date or text column through its parts."""
    from .derive import column_sources

    sources = column_sources(pre.get("derived"))
    derived = {d["column"]: d for d in pre.get("derived") or []}
    errors: dict[str, str] = {}
    for col in pre["columns"]:
        name = sources.get(col["name"], col["name"])
        if name in errors or name not in table:
            continue
        try:
            encode_table([col], {name: list(np.atleast_1d(table[name]))}, source,
                         [derived[name]] if name in derived else None, trained=True)
        except DataError as e:
            errors[name] = str(e)
    return list(errors.values())
