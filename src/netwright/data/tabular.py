"""CSV files: a target column, numeric and categorical features, sensitive columns."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np

from ..errors import DataError
from .info import RawData, StreamRequest
from .location import Location, is_url, local_copy, read_parquet
from .missing import (MISSING_CATEGORY, OTHER_CATEGORY, Strategy, absent_of, cell_text, describe_markers, fills_value,
                      is_missing, number_markers, strategy_of)
from . import derive
from .cells import Cells, cells_of
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
    if (read := _arrow_csv(path, delimiter)) is not None:
        return read
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(bounded_lines(fh, path), delimiter=delimiter))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file; a CSV is expected") from None
    except csv.Error as e:
        raise DataError(f"{path}: malformed CSV: {e}") from None
    return _columns(rows, path)


def _arrow_csv(path: Path, delimiter: str) -> dict[str, Cells] | None:
    """The file read by pyarrow's CSV reader, every column as text (the cells the csv module gives,
    each column's Arrow text kept for :class:`Cells`); None where Arrow cannot read it (a ragged
    row, a duplicate header, a line too long, bad UTF-8): the csv module then reads it, and says
    what is wrong."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader([fh.readline(MAX_LINE)], delimiter=delimiter), [])
        stripped = [h.strip() for h in header]
        if not header or len(set(header)) != len(header) or len(set(stripped)) != len(stripped):
            return None
        t = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
                           convert_options=pacsv.ConvertOptions(column_types={h: pa.string() for h in header},
                                                                strings_can_be_null=False,
                                                                quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, UnicodeDecodeError, csv.Error, OSError):
        return None
    if t.column_names != header or t.num_rows == 0:
        return None
    return {h: Cells.of_arrow(t.column(raw).combine_chunks()) for h, raw in zip(stripped, header)}


MAX_LINE = 64 << 20  # characters of one CSV line: a file without line breaks is refused after reading this much


def bounded_lines(fh: Any, path: object) -> Iterator[str]:
    """The lines of a text file, refusing one over ``MAX_LINE`` characters before it is read whole
    (a binary file or a table without line breaks would otherwise be read into memory at once)."""
    while True:
        line = fh.readline(MAX_LINE)
        if not line:
            return
        if len(line) >= MAX_LINE and not line.endswith(("\n", "\r")):
            raise DataError(f"{path}: a line of over {MAX_LINE >> 20} MiB without a line break; a CSV holds one "
                            "row a line (is this the right file, or a different format?)")
        yield line


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


def _mostly_text(values: Any) -> bool:
    if isinstance(values, np.ndarray):
        return False  # numbers (a derived column)
    if isinstance(values, Cells) and (read := values.numbers()) is not None:
        filled = ~absent_of(values)
        return bool(filled.any()) and int((filled & ~read[0]).sum()) > filled.sum() / 2
    filled = [v for v in values if not is_missing(v)]
    return bool(filled) and sum(not _is_number(v) for v in filled) > len(filled) / 2


@register_dataset("csv", modality="tabular")
def csv_file(
    path: Location,
    target: str,
    task: Literal["auto", "classification", "regression"] = "auto",
    features: list[str] | None = None,
    categorical: list[str] | None = None,
    sensitive: list[str] = [],
    sensitive_as_feature: bool = False,
    delimiter: str = ",",
    missing: Strategy | dict[str, Strategy] = "median",
    missing_indicator: bool = True,
    fill_value: float = 0.0,
    na_values: list[str] = [],
    embed_above: int = 50,
    fold_case: bool = True,
    transform: dict[str, Literal["log", "quantile"]] = {},
    prefix: dict[str, int] = {},
    stream: bool | Literal["auto"] = "auto",
    fit_rows: int = 200_000,
    sample_rows: int = 20_000,
    workers: int | Literal["auto"] = "auto",
) -> RawData | StreamRequest:
    """A CSV file with a header row: one target column, numeric and categorical features.

    Args:
        path: the CSV file: a local path or a URL (s3://bucket/key.csv, gs://, any fsspec URL).
        target: the column to predict; rows where it is missing are dropped (and counted).
        task: classification, regression, or auto (text or few integer values: classification).
        features: columns used as inputs (default: all but target and sensitive ones).
        categorical: columns one-hot encoded (default: columns holding mostly text).
        sensitive: columns kept per example for fairness audits.
        sensitive_as_feature: also feed the sensitive columns to the model.
        delimiter: field separator.
        missing: what a missing cell of a feature becomes: median, mean, most_frequent, constant
            (fill_value) or iterative (regressed on the other numeric columns, scikit-learn's
            IterativeImputer) for numeric columns, fitted on the train split; a categorical column's
            missing cells are a '(missing)' category (most_frequent: the most frequent category);
            drop drops the row; error refuses the file. One name for all columns, or a map of
            column -> name with an optional 'default'.
        missing_indicator: add a 0/1 column after each filled column that had missing cells.
        fill_value: the constant for missing: constant.
        na_values: cells read as missing besides the empty cell and pandas' defaults (NA, NaN, null, ...).
        embed_above: a categorical column with more categories than this is given to the model as
            the index of its category, which models embed (the mlp: a learnt vector per category),
            not as one-hot columns; a category first seen at predict time is '(other)'.
        fold_case: spellings of a category that differ only in case ('basic', 'Basic', 'BASIC') are
            one category, named by its most frequent spelling; at predict time too.
        transform: column -> log or quantile, for a column of numbers with a long tail (incomes,
            counts): log is sign(x) log(1 + |x|); quantile maps each value to its rank among the
            train split's (101 quantiles, 0 to 1); either before standardising, at predict time too.
        prefix: column -> n: a code with structure (a postcode) cut to its first n characters,
            then a category.
        stream: read the file a block at a time while training instead of whole (auto: a local file of
            more than 200 MB): it is converted once into a Parquet copy in the cache folder, which is
            streamed like a Parquet table (its splits are then random, not stratified).
        fit_rows: training rows (the first in the file) that fit the preprocessing of a streamed file.
        sample_rows: rows of each split of a streamed file held in memory for the stages that read examples.
        workers: processes that decode a streamed file's blocks ahead of training (auto: one per core, at most 4).
    """
    if stream is not False and not is_url(path) and not isinstance(path, io.TextIOBase) and Path(path).is_file() \
            and (stream is True or Path(path).stat().st_size > CSV_STREAM_BYTES):
        from .csv_cache import parquet_copy

        options = dict(target=target, task=task, features=features, categorical=categorical, sensitive=sensitive,
                       sensitive_as_feature=sensitive_as_feature, missing=missing,
                       missing_indicator=missing_indicator, fill_value=fill_value, na_values=na_values,
                       embed_above=embed_above, fold_case=fold_case, transform=transform, prefix=prefix)
        return _parquet_stream(parquet_copy(Path(path), delimiter, na_values), options, stream=True,
                               fit_rows=fit_rows, sample_rows=sample_rows, workers=workers)
    if is_url(path):
        with local_copy(str(path)) as local:
            table = read_csv(local, delimiter)
    else:
        table = read_csv(path, delimiter)
    src = str(path) if not isinstance(path, io.TextIOBase) else "csv"
    return table_dataset(table, src, target, task, features, categorical, sensitive, sensitive_as_feature, missing,
                         missing_indicator, fill_value, na_values, embed_above, fold_case, transform=transform,
                         prefix=prefix)


def table_dataset(table: dict[str, list[str]], src: str, target: str, task: str = "auto",
                  features: list[str] | None = None, categorical: list[str] | None = None,
                  sensitive: list[str] = [], sensitive_as_feature: bool = False,
                  missing: Strategy | dict[str, Strategy] = "median", missing_indicator: bool = True,
                  fill_value: float = 0.0, na_values: list[str] = [], embed_above: int = 50, fold_case: bool = True,
                  categories: dict[str, list[str]] | None = None, classes: list[str] | None = None,
                  transform: dict[str, str] = {}, prefix: dict[str, int] = {}) -> RawData:
    """A table of raw cells ``{column: [cell, ...]}`` (from any file) as a data set: the options
    are the ``csv`` loader's. ``categories`` and ``classes``: the values each categorical column
    and the target take in the whole file, when ``table`` is a sample of it (a streamed table)."""
    known = list(table)
    table = cells_of(table)  # each column's cells read at once where Arrow reads them alike
    named = list(missing) if isinstance(missing, dict) else []
    for col in [target, *(features or []), *(categorical or []), *sensitive, *(c for c in named if c != "default"),
                *transform, *prefix]:
        if col not in table:
            raise DataError(f"{src}: no column '{col}'; columns are {', '.join(known)}")
    for col, n in prefix.items():
        if n < 1:
            raise DataError(f"data.prefix: {col}: {n}; give how many first characters to keep, 1 or more")
    if not table[target]:
        raise DataError(f"{src}: the file has a header but no data rows")

    chosen = features is not None
    if features is None:
        features = [c for c in known if c != target and (sensitive_as_feature or c not in sensitive)]
    if target in features:
        raise DataError(f"{src}: the target '{target}' cannot also be a feature; remove it from data.features")
    na = frozenset(na_values)
    features, derived, notes = derive.fit(table, features, chosen, categorical, na, prefix)  # IDs out, dates in parts
    for key, named in (("transform", transform), ("prefix", prefix)):
        if unused := [c for c in named if c not in features]:
            raise DataError(f"{src}: data.{key}: '{unused[0]}' is not a model input ({', '.join(features[:8])}"
                            f"{' ...' if len(features) > 8 else ''}); list it in data.features or drop the key")
    table = derive.apply(table, derived, src, na)
    if not features:
        raise DataError(f"{src}: no feature columns left besides the target '{target}'"
                        + (f" ({'; '.join(notes)})" if notes else ""))
    # a few '?' or 'unknown' cells in a column of numbers: missing (said in a note), not a refusal
    marks = {c: m for c in features if c not in (categorical or ()) and strategy_of(missing, c) != "error"
             and (m := number_markers(table[c], na))}
    notes += [describe_markers(c, m) for c, m in marks.items()]
    na_of = {c: na | frozenset(marks.get(c, ())) for c in features}
    table, facts = _handle_missing(table, target, features, missing, na, na_of, src)
    cat = (set(categorical) if categorical is not None else {c for c in features if _mostly_text(table[c])}) | set(prefix)
    columns, facts_notes, sources = [], [], derive.column_sources(derived)
    for c in features:
        strategy = strategy_of(missing, c)
        absent = absent_of(table[c], na_of[c])
        col: dict = {"name": c, "kind": "categorical" if c in cat else "numeric", "missing": strategy}
        if col["kind"] == "categorical":
            seen = [v.strip() for v, a in zip(table[c], absent.tolist()) if not a] + list((categories or {}).get(c, ()))
            cats, folded = fold_spellings(seen) if fold_case else (sorted(set(seen)), [])
            if folded:
                col["fold_case"] = True
                facts_notes.append(f"{c}: {'; '.join(folded[:3])}{' ...' if len(folded) > 3 else ''} "
                                   "(spellings that differ in case are one category; data.fold_case: false keeps them apart)")
            many = len(cats) > embed_above  # an index the model embeds, not a one-hot block
            # a column never filled in training: its only category is '(missing)'
            own = bool(absent.any()) and (strategy != "most_frequent" or many or not cats)
            col["categories"] = cats + ([MISSING_CATEGORY] if own else []) + ([OTHER_CATEGORY] if many else [])
            if many:
                col["kind"] = "id"
                facts_notes.append(f"{c}: {len(cats)} categories, embedded (more than data.embed_above: {embed_above})")
        if c in transform:
            if col["kind"] != "numeric":
                raise DataError(f"{src}: data.transform: '{c}' holds categories; a transform applies to a column "
                                "of numbers")
            col["transform"] = transform[c]
        if strategy == "constant":
            col["fill_value"] = fill_value
        if na_of[c]:
            col["na_values"] = sorted(na_of[c])
        if absent.any() and fills_value(col) and missing_indicator:
            col["indicator"] = True
            facts["indicators"].append(c)
        if absent.any():  # a date's blank cell is missing in each of its parts: counted once, by its column
            source = sources.get(c, c)
            facts["cells"] += int(absent.sum()) if source not in facts["strategies"] else 0
            facts["strategies"][source] = strategy if fills_value(col) else "category"
        columns.append(col)
    x = encode_table(columns, table, src)

    values = [v.strip() for v in table[target]]
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
        labels = sorted(set(values) | set(classes or ()), key=lambda v: (float(v), v) if numeric else (0.0, v))
        index = {v: i for i, v in enumerate(labels)}
        y = np.array([index[v] for v in values], dtype=np.int64)
        class_names = labels

    return RawData(
        x=x,
        y=y,
        task=task,
        modality="tabular",
        preprocess={"kind": "table", "shape": [x.shape[1]], "columns": columns,
                    **({"missing": facts} if facts["cells"] or facts["dropped_rows"] else {}),
                    **({"derived": derived} if derived else {}),
                    **({"notes": notes + facts_notes} if notes or facts_notes else {})},
        class_names=class_names,
        feature_names=table_feature_names(columns),
        target_name=target,
        groups={s: np.array([MISSING_CATEGORY if is_missing(v, na) else v.strip() for v in table[s]])
                for s in sensitive},
        source=src,
    )


def fold_spellings(cells: list[str]) -> tuple[list[str], list[str]]:
    """(categories, notes): the distinct cells with spellings that differ only in case taken as
    one category named by its most frequent spelling (ties: the first in sort order), and a note
    for each category that took in more than one spelling."""
    from collections import Counter

    counts = Counter(cells)
    groups: dict[str, list[str]] = {}
    for spelling in sorted(counts):
        groups.setdefault(spelling.lower(), []).append(spelling)
    cats, notes = [], []
    for spellings in groups.values():
        name = max(spellings, key=lambda v: (counts[v], [-ord(ch) for ch in v]))
        cats.append(name)
        if len(spellings) > 1:
            notes.append(f"{', '.join(repr(v) for v in spellings)} read as {name!r}")
    return sorted(cats), notes


def read_arrow_table(path: Location, suffix: str | None = None) -> dict[str, list[str]]:
    """A Parquet or JSON Lines file (by ``suffix``, else the path's) as ``{column: [cell, ...]}``:
    every value as the text a CSV would hold, a null as an empty cell (missing). Parquet may be a
    folder of files (hive partitions as columns) and either may be at a URL (``location``)."""
    import pyarrow as pa

    parquet = (suffix or Path(str(path)).suffix).lower() == ".parquet"
    if parquet and (is_url(path) or Path(path).is_dir()):
        return _cells_of(read_parquet(path), str(path))
    if is_url(path):
        with local_copy(str(path)) as local:
            return read_arrow_table(local, suffix)
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        if parquet:
            import pyarrow.parquet as pq

            t = pq.read_table(path)
        else:
            import pyarrow.json as pj

            if not path.read_bytes().strip():
                raise DataError(f"{path}: the file has no rows")
            t = pj.read_json(path)
    except (pa.ArrowInvalid, OSError) as e:
        why = str(e).splitlines()[0][:200]
        raise DataError(f"{path}: not a readable {path.suffix.lstrip('.') or 'table'} file ({why}); "
                        "every row needs the same columns with one value each") from None
    return _cells_of(t, str(path))


def _cells_of(t: Any, path: str) -> dict[str, list[str]]:
    if t.num_rows == 0:
        raise DataError(f"{path}: the file has no rows")

    def cell(v: object) -> str:
        if isinstance(v, (dict, list)):
            raise DataError(f"{path}: a nested value ({str(v)[:40]}); give one value per cell")
        return cell_text(v)

    return {name: [cell(v) for v in t.column(name).to_pylist()] for name in t.column_names}


def _table_file_loader(fmt: str, suffix: str, extra: Callable[..., Any] | None = None):
    """A loader of ``fmt`` files taking the ``csv`` loader's options (but its delimiter), and the
    keyword options of ``extra`` (which gets the file, the options and its own, and may return a
    data set to stream instead of a table read whole)."""
    import inspect

    own = [p for p in inspect.signature(extra).parameters.values() if p.kind == p.KEYWORD_ONLY] if extra else []

    def loader(path: Location, **options: object) -> Any:
        mine = {p.name: options.pop(p.name, p.default) for p in own}
        streamed = extra(path, options, **mine) if extra else None
        return streamed if streamed is not None else table_dataset(read_arrow_table(path, suffix), str(path),
                                                                   **options)

    sig = inspect.signature(csv_file)
    csv_only = ("delimiter", *CSV_STREAM_OPTIONS)  # the CSV's own streaming (a Parquet copy) is not theirs
    loader.__signature__ = sig.replace(parameters=[p for p in sig.parameters.values() if p.name not in csv_only]
                                       + [p.replace(kind=p.KEYWORD_ONLY) for p in own])
    loader.__annotations__ = {**{k: v for k, v in csv_file.__annotations__.items() if k not in csv_only},
                              **{p.name: extra.__annotations__[p.name] for p in own}}
    doc = (csv_file.__doc__ or "").replace("A CSV file with a header row", f"A {fmt} file (pyarrow reads it)")
    doc = doc.split("\n        stream:", 1)[0]  # the CSV's streaming options close its Args
    doc = "\n".join(line for line in doc.splitlines() if "delimiter:" not in line)
    loader.__doc__ = doc.rstrip() + ("\n" + inspect.getdoc(extra).split("Args:", 1)[1].rstrip("\n").replace(
        "\n", "\n    ") if extra and "Args:" in (inspect.getdoc(extra) or "") else "")
    loader.__name__ = loader.__qualname__ = f"{suffix.lstrip('.')}_file"
    return register_dataset(suffix.lstrip("."), modality="tabular")(loader)


CSV_STREAM_OPTIONS = ("stream", "fit_rows", "sample_rows", "workers")
STREAM_ROWS = 2_000_000  # stream: auto streams a Parquet file of more rows than this
CSV_STREAM_BYTES = 200 << 20  # ... and a CSV file of more bytes than this (about 2 million rows of 100 bytes)


def _parquet_stream(path: Location, options: dict[str, Any], *, stream: bool | Literal["auto"] = "auto",
                    fit_rows: int = 200_000, sample_rows: int = 20_000,
                    workers: int | Literal["auto"] = "auto") -> Any:
    """Whether to stream a Parquet file, and the request when it is.

    Args:
        stream: read the file one row group at a time while training instead of whole (auto: when it has
            more than 2,000,000 rows); its splits are then random, not stratified.
        fit_rows: training rows (the first in the file) that fit the preprocessing of a streamed file.
        sample_rows: rows of each split of a streamed file held in memory for the stages that read examples.
        workers: processes that decode a streamed file's row groups ahead of training (auto: one per core, at most 4).
    """
    if stream is False:
        return None
    if is_url(path) or Path(path).is_dir():
        if stream is True:
            raise DataError(f"data.stream: {path} is read whole (a URL or a folder of files); copy it to one local "
                            "Parquet file to stream it, or set stream: auto")
        return None
    if stream == "auto":
        import pyarrow.parquet as pq

        try:
            if pq.ParquetFile(path).metadata.num_rows <= STREAM_ROWS:
                return None
        except Exception:
            return None  # read whole: that says what is wrong with the file
    if workers == "auto":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        workers = min(cores, 4)
    return StreamRequest(Path(path), str(options.pop("target")), options, fit_rows, sample_rows, int(workers))


parquet_file = _table_file_loader("Parquet", ".parquet", _parquet_stream)
jsonl_file = _table_file_loader("JSON Lines", ".jsonl")


def _handle_missing(table: dict[str, list[str]], target: str, features: list[str],
                    missing: str | dict[str, str], na: frozenset[str], na_of: dict[str, frozenset[str]],
                    src: str) -> tuple[dict[str, list[str]], dict]:
    """Drop the rows without a target and, for columns with ``missing: drop``, the rows missing
    them; refuse a missing cell in a column with ``missing: error``. Returns the kept table and the
    facts for ``preprocess["missing"]``."""
    n = len(table[target])
    keep = np.ones(n, dtype=bool)
    dropped: dict[str, int] = {}
    no_target = absent_of(table[target], na)
    if no_target.all():
        raise DataError(f"{src}: the target '{target}' is missing in every row")
    if no_target.any():
        dropped[f"no {target}"] = int(no_target.sum())
        keep &= ~no_target
    for c in features:
        absent = absent_of(table[c], na_of[c]) & keep
        strategy = strategy_of(missing, c)
        if not absent.any():
            continue
        if strategy == "error":
            row = int(np.argmax(absent))
            raise DataError(f"{src}: column '{c}' row {row + 1} is missing (data.missing: error); fill it, "
                            "or set data.missing to median, most_frequent, constant or drop")
        if strategy == "drop":
            dropped[f"missing {c}"] = int(absent.sum())
            keep &= ~absent
    if not keep.any():
        raise DataError(f"{src}: no rows left after dropping those with missing values; "
                        "fill them instead (data.missing: median)")
    if not keep.all():
        rows = np.flatnonzero(keep)
        table = {c: v[rows] if isinstance(v, np.ndarray) else Cells([v[i] for i in rows]) for c, v in table.items()}
    return table, {"cells": 0, "strategies": {}, "indicators": [], "dropped_rows": dropped}
