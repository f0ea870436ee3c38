"""A CSV too big to read whole, converted once into a Parquet file that the table stream reads.

Why a Parquet copy and not the CSV itself: the stream reads a table by blocks in a shuffled order
every epoch, with worker processes decoding blocks side by side, and resumes mid-epoch at a block;
Parquet's row groups give that random access and keep the parsed values, where a CSV would be
scanned for its line offsets and parsed again every epoch. The conversion is paid once (pyarrow's
streaming CSV reader, one block at a time, so memory stays bounded) and the copy is kept in the
cache folder (``NETWRIGHT_CACHE`` or ``~/.cache/netwright``, under ``tables/``) while the CSV's
path, size and modification time are unchanged.

A column is stored as numbers when every filled cell of the first block reads as one; otherwise
(and when a later block holds a cell that is no number) as the text it was, so that the stream
reads every cell as the in-memory loader would.
"""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

from ..atomic import write_with
from ..errors import DataError
from .cache import cache_dir
from .cells import Cells
from .missing import MISSING_TOKENS, absent_of

ROW_GROUP = 100_000  # rows of each row group of the copy: the stream's block
BLOCK = 16 << 20  # bytes the CSV reader parses at a time


def parquet_copy(path: Path, delimiter: str = ",", na_values: list[str] = ()) -> Path:
    """The Parquet copy of the CSV at ``path`` (made now if the cache has none for this file)."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{delimiter}|{sorted(na_values)}|1"
    out = cache_dir() / "tables" / f"{path.stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.parquet"
    if out.is_file():
        return out
    with open(path, newline="", encoding="utf-8-sig") as fh:
        header = next(csv.reader([fh.readline()], delimiter=delimiter), [])
    if not header or len(set(header)) != len(header):
        raise DataError(f"{path}: the header row is empty or names a column twice")
    nulls = sorted(MISSING_TOKENS | set(na_values))
    numbers = _numeric_columns(path, header, delimiter, frozenset(na_values))
    for _ in range(len(header) + 1):
        try:
            write_with(out, lambda tmp: _convert(path, tmp, header, numbers, delimiter, nulls))
            return out
        except _NotANumber as e:  # a later block holds text in a column of numbers: keep it as text
            numbers.discard(e.column)
        except OSError as e:  # a read-only or full cache folder; nothing is left half-written there
            raise DataError(f"{path}: cannot write its Parquet copy for streaming into {out.parent} "
                            f"({e.strerror or e}); set NETWRIGHT_CACHE to a writable folder with room for a "
                            "copy about the CSV's size, or data.stream: false") from None
    raise DataError(f"{path}: cannot be converted for streaming")  # not reached: each round drops a column


class _NotANumber(Exception):
    def __init__(self, column: str):
        self.column = column


def _numeric_columns(path: Path, header: list[str], delimiter: str, na: frozenset[str]) -> set[str]:
    """The columns whose filled cells in the file's first block all read as numbers."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=BLOCK),
                            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
                            convert_options=pacsv.ConvertOptions(column_types={h: pa.string() for h in header},
                                                                 strings_can_be_null=False))
    try:
        first = reader.read_next_batch()
    except (StopIteration, pa.ArrowInvalid) as e:
        raise DataError(f"{path}: no rows to stream ({str(e).splitlines()[0][:120] if str(e) else 'empty'})") from None
    found = set()
    for name in header:
        cells = Cells(first.column(name).to_pylist())
        absent = absent_of(cells, na)
        if (~absent).any() and cells.filled_numbers(absent) is not None:
            found.add(name)
    return found


def _convert(path: Path, tmp: Path, header: list[str], numbers: set[str], delimiter: str, nulls: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    types = {h: pa.float64() if h in numbers else pa.string() for h in header}
    reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=BLOCK),
                            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
                            convert_options=pacsv.ConvertOptions(column_types=types, null_values=nulls,
                                                                 strings_can_be_null=False))
    with pq.ParquetWriter(tmp, reader.schema) as writer:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as e:
                column = _column_of(str(e), header)
                if column is None or column not in numbers:
                    raise DataError(f"{path}: malformed CSV ({str(e).splitlines()[0][:200]})") from None
                raise _NotANumber(column) from None
            writer.write_table(pa.Table.from_batches([batch]), row_group_size=ROW_GROUP)


def _column_of(message: str, header: list[str]) -> str | None:
    """The column an Arrow conversion error names ('In CSV column #3: ...')."""
    found = re.search(r"column #(\d+)", message)
    return header[int(found.group(1))] if found and int(found.group(1)) < len(header) else None
