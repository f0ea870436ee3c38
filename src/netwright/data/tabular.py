"""CSV files: a target column, numeric and categorical features, sensitive columns."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import DataError
from .info import RawData
from .preprocess import encode_table, table_feature_names
from .registry import register_dataset


def read_csv(path: Path | io.TextIOBase, delimiter: str = ",") -> dict[str, list[str]]:
    """Read a CSV with a header row (a file, or an open text stream) into ``{column: [cell, ...]}``."""
    if isinstance(path, io.TextIOBase):
        rows = list(csv.reader(path, delimiter=delimiter))
        return _columns(rows, "<stream>")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh, delimiter=delimiter))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file; a CSV is expected") from None
    except csv.Error as e:
        raise DataError(f"{path}: malformed CSV: {e}") from None
    return _columns(rows, path)


def _columns(rows: list[list[str]], path: object) -> dict[str, list[str]]:
    rows = [r for r in rows if r]
    if not rows:
        raise DataError(f"{path}: the file is empty; a header row and data rows are expected")
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header):
        dup = next(h for h in header if header.count(h) > 1)
        raise DataError(f"{path}: column '{dup}' appears twice in the header")
    for i, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            raise DataError(f"{path}: line {i} has {len(r)} fields but the header has {len(header)}")
    return {h: [r[j] for r in rows[1:]] for j, h in enumerate(header)}


def _is_number(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def _mostly_text(values: list[str]) -> bool:
    filled = [v for v in values if v.strip()]
    return bool(filled) and sum(not _is_number(v) for v in filled) > len(filled) / 2


@register_dataset("csv", modality="tabular")
def csv_file(
    path: Path,
    target: str,
    task: Literal["auto", "classification", "regression"] = "auto",
    features: list[str] | None = None,
    categorical: list[str] | None = None,
    sensitive: list[str] = [],
    sensitive_as_feature: bool = False,
    delimiter: str = ",",
) -> RawData:
    """A CSV file with a header row: one target column, numeric and categorical features.

    Args:
        path: the CSV file.
        target: the column to predict.
        task: classification, regression, or auto (text or few integer values: classification).
        features: columns used as inputs (default: all but target and sensitive ones).
        categorical: columns one-hot encoded (default: columns holding mostly text).
        sensitive: columns kept per example for fairness audits.
        sensitive_as_feature: also feed the sensitive columns to the model.
        delimiter: field separator.
    """
    table = read_csv(path, delimiter)
    src = str(path) if not isinstance(path, io.TextIOBase) else "csv"
    known = list(table)
    for col in [target, *(features or []), *(categorical or []), *sensitive]:
        if col not in table:
            raise DataError(f"{src}: no column '{col}'; columns are {', '.join(known)}")
    if not table[target]:
        raise DataError(f"{src}: the file has a header but no data rows")

    if features is None:
        features = [c for c in known if c != target and (sensitive_as_feature or c not in sensitive)]
    if target in features:
        raise DataError(f"{src}: the target '{target}' cannot also be a feature; remove it from data.features")
    if not features:
        raise DataError(f"{src}: no feature columns left besides the target '{target}'")
    cat = set(categorical) if categorical is not None else {c for c in features if _mostly_text(table[c])}
    columns = []
    for c in features:
        if c in cat:
            cats = sorted({v.strip() for v in table[c]})
            columns.append({"name": c, "kind": "categorical", "categories": cats})
        else:
            columns.append({"name": c, "kind": "numeric"})
    x = encode_table(columns, table, src)

    values = [v.strip() for v in table[target]]
    if any(not v for v in values):
        row = next(i for i, v in enumerate(values) if not v)
        raise DataError(f"{src}: target '{target}' is empty in row {row + 1}; fill or drop that row")
    numeric = all(_is_number(v) for v in values)
    if task == "auto":
        integral = numeric and all(float(v).is_integer() for v in values)
        task = "classification" if not numeric or (integral and len(set(values)) <= 20) else "regression"
    if task == "regression":
        if not numeric:
            bad = next(v for v in values if not _is_number(v))
            raise DataError(f"{src}: regression target '{target}' holds text '{bad}'; use task: classification")
        y = np.array([float(v) for v in values], dtype=np.float32)
        class_names = None
    else:
        labels = sorted(set(values), key=lambda v: (float(v), v) if numeric else (0.0, v))
        index = {v: i for i, v in enumerate(labels)}
        y = np.array([index[v] for v in values], dtype=np.int64)
        class_names = labels

    return RawData(
        x=x,
        y=y,
        task=task,
        modality="tabular",
        preprocess={"kind": "table", "shape": [x.shape[1]], "columns": columns},
        class_names=class_names,
        feature_names=table_feature_names(columns),
        target_name=target,
        groups={s: np.array([v.strip() for v in table[s]]) for s in sensitive},
        source=src,
    )
