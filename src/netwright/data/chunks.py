"""A table file of any size (CSV, Parquet, JSON Lines) read in chunks of rows, and predictions
written in parts, for bulk prediction in bounded memory (``netwright.predict_file``).

Each chunk's predictions are written atomically as one part under ``<out>.parts/`` beside a
manifest naming the input, the run and the options; a job stopped part-way (Ctrl-C, kill -9, a
full disk) picks up after its last whole part when run again, and the parts are joined into
``<out>`` (atomically) once the last is written.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..atomic import write_text, write_with
from ..errors import DataError
from .tabular import bounded_lines

INPUTS = (".csv", ".parquet", ".jsonl")
OUTPUTS = (".csv", ".parquet", ".jsonl")


def flatten(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Prediction dicts as flat records: ``p_<class>`` columns for the probabilities, a conformal
    ``set`` as ``a|b``, an ``interval`` as ``lo`` and ``hi``."""
    out = []
    for r in rows:
        flat = {k: v for k, v in r.items() if k not in ("set", "interval", "probabilities")}
        if "set" in r:
            flat["set"] = "|".join(r["set"])
        if "interval" in r:
            flat["lo"], flat["hi"] = r["interval"]
        out.append(flat | {f"p_{n}": p for n, p in r.get("probabilities", {}).items()})
    return out


def csv_text(records: list[dict[str, Any]], header: bool = True) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(records[0]))
    if header:
        writer.writeheader()
    writer.writerows(records)
    return buf.getvalue()


def count_rows(path: Path) -> int | None:
    """Rows in a table file, when that is cheap to know (Parquet's footer); else None."""
    if path.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(path).metadata.num_rows
        except (pa.ArrowInvalid, OSError) as e:
            raise DataError(f"{path}: not a readable Parquet file ({e})") from None
    return None


class ArrowColumns(dict):
    """An Arrow table that reads as ``{column: [cell, ...]}``: a column becomes a Python list only
    when it is asked for (the encoder reads ``table`` in Arrow; an ID column is read as a list)."""

    def __init__(self, table: Any):
        super().__init__(dict.fromkeys(table.column_names))
        self.table = table

    def __getitem__(self, name: str) -> list[Any]:
        value = dict.__getitem__(self, name)
        if value is None:
            value = self.table.column(name).to_pylist()
            dict.__setitem__(self, name, value)
        return value

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default

    def values(self) -> Any:
        return [self[k] for k in self]

    def items(self) -> Any:
        return [(k, self[k]) for k in self]


def read_chunks(path: Path, rows: int, skip: int = 0) -> Iterator[dict[str, list[Any]]]:
    """``{column: values}`` tables of up to ``rows`` rows each, after the first ``skip`` rows."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        yield from _parquet_chunks(path, rows, skip)
    elif suffix == ".csv":
        yield from _csv_chunks(path, rows, skip)
    elif suffix == ".jsonl":
        yield from _jsonl_chunks(path, rows, skip)
    else:
        raise DataError(f"{path}: bulk prediction reads {', '.join(INPUTS)} files")


def _parquet_chunks(path: Path, rows: int, skip: int) -> Iterator[dict[str, list[Any]]]:
    """Exactly ``rows`` rows a chunk (the last one fewer), whatever the file's row groups. Read a
    row group at a time (``iter_batches`` keeps memory it never gives back: 10 MB a chunk)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        f = pq.ParquetFile(path)
        buf: list[Any] = []
        have = 0
        for g in range(f.num_row_groups):
            size = f.metadata.row_group(g).num_rows
            if skip >= size:  # a resumed job: whole row groups done already are not read
                skip -= size
                continue
            group = f.read_row_group(g).slice(skip)
            skip = 0
            buf.append(group)
            have += group.num_rows
            while have >= rows:
                t = pa.concat_tables(buf)
                buf, have = [t.slice(rows)], have - rows
                yield ArrowColumns(t.slice(0, rows))
        if have:
            yield ArrowColumns(pa.concat_tables(buf))
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"{path}: not a readable Parquet file ({e})") from None


def _csv_chunks(path: Path, rows: int, skip: int) -> Iterator[dict[str, list[Any]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(bounded_lines(fh, path))
            header = [h.strip() for h in next(reader, [])]
            if not header:
                raise DataError(f"{path}: the file is empty; a header row and data rows are expected")
            line = 1
            chunk: list[list[str]] = []
            for record in reader:
                line += 1
                if not record:
                    continue
                if len(record) != len(header):
                    raise DataError(f"{path}: line {line} has {len(record)} fields but the header has {len(header)}")
                if skip:
                    skip -= 1
                    continue
                chunk.append(record)
                if len(chunk) == rows:
                    yield {h: [r[j] for r in chunk] for j, h in enumerate(header)}
                    chunk = []
            if chunk:
                yield {h: [r[j] for r in chunk] for j, h in enumerate(header)}
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file; a CSV is expected") from None
    except csv.Error as e:
        raise DataError(f"{path}: malformed CSV: {e}") from None


def _jsonl_chunks(path: Path, rows: int, skip: int) -> Iterator[dict[str, list[Any]]]:
    chunk: list[dict[str, Any]] = []

    def table() -> dict[str, list[Any]]:
        names = list(dict.fromkeys(k for r in chunk for k in r))
        return {k: [r.get(k) for r in chunk] for k in names}

    with open(path, encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            if skip:
                skip -= 1
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: line {line_no} is not JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}: line {line_no} is not an object {{column: value}}")
            chunk.append(record)
            if len(chunk) == rows:
                yield table()
                chunk = []
    if chunk:
        yield table()


def write_part(path: Path, records: list[dict[str, Any]], fmt: str) -> None:
    if fmt == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        def save(tmp: Path) -> None:
            pq.write_table(pa.Table.from_pylist(records), tmp)

        write_with(path, save)
    elif fmt == ".csv":
        write_text(path, csv_text(records))
    else:
        write_text(path, "".join(json.dumps(r) + "\n" for r in records))


def join_parts(parts: list[Path], out: Path, fmt: str) -> None:
    def save(tmp: Path) -> None:
        if fmt == ".parquet":
            import pyarrow.parquet as pq

            import pyarrow as pa

            # one schema for all parts: a part whose rows all failed (--on-error null) has null-typed columns
            schema = pa.unify_schemas([pq.read_schema(p) for p in parts], promote_options="permissive")
            writer = None
            try:
                for p in parts:
                    t = pq.read_table(p)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, schema)
                    writer.write_table(t.select(schema.names).cast(schema))
            finally:
                if writer is not None:
                    writer.close()
            return
        with open(tmp, "wb") as dst:
            for i, p in enumerate(parts):
                with open(p, "rb") as src:
                    if fmt == ".csv" and i:
                        src.readline()  # one header
                    shutil.copyfileobj(src, dst)

    write_with(out, save)


def resume_parts(parts_dir: Path, manifest: dict[str, Any]) -> int:
    """Whole chunks already written by a stopped job with this same input, run and options;
    parts of any other job are cleared."""
    mf = parts_dir / "manifest.json"
    if parts_dir.is_dir():
        try:
            same = json.loads(mf.read_text()) == manifest
        except (OSError, ValueError):
            same = False
        if same:
            names = sorted(p.name for p in parts_dir.glob(f"part-*{manifest['format']}"))
            whole = 0
            while f"part-{whole:06d}{manifest['format']}" in names:
                whole += 1
            return whole
        shutil.rmtree(parts_dir)
    parts_dir.mkdir(parents=True)
    write_text(mf, json.dumps(manifest, indent=2))
    return 0
