"""Where a table lives: a local path, or a URL that pyarrow's file systems or fsspec open
(``s3://bucket/key``, ``gs://``, ``hdfs://``, ``file://``, ``memory://`` ...).

Credentials and endpoints come from the environment the way the libraries read them (for S3:
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL`` for
an S3-compatible server, or the AWS config files). A CSV or JSON Lines file at a URL is copied to
a local temporary file and read as a local one; Parquet is read in place, and a folder (or
prefix) of Parquet files is one table, its ``key=value`` sub-folders read as columns.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Union

from ..errors import DataError

# a loader's path: a local file or folder (resolved beside the spec), or a URL kept as written
Location = Union[Path, str]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(value: Any) -> bool:
    """Whether ``value`` is a URL (``scheme://...``) rather than a local path."""
    return isinstance(value, str) and bool(_SCHEME.match(value))


def filesystem(url: str) -> tuple[Any, str]:
    """(a pyarrow file system, the path in it) for ``url``: pyarrow's own for the schemes it
    knows (s3, gs, hdfs, file), fsspec's (wrapped for pyarrow) for the others."""
    import pyarrow as pa
    from pyarrow import fs as pafs

    try:
        return pafs.FileSystem.from_uri(url)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        pass
    try:
        import fsspec

        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as e:
        raise DataError(f"{url}: no file system reads this URL ({str(e).splitlines()[0][:120]}); give a local "
                        "path or an s3://, gs://, file:// or fsspec URL whose package is installed") from None
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


def found(url: str) -> tuple[Any, str, Any]:
    """(file system, path, its ``FileInfo``) of ``url``, refused in one line when nothing is there."""
    from pyarrow import fs as pafs

    fs, path = filesystem(url)
    try:
        entry = fs.get_file_info(path)
    except OSError as e:
        raise DataError(f"{url}: cannot be read ({_why(e)}); check the bucket, the key and the credentials "
                        "(AWS_* variables or the libraries' config files)") from None
    if entry.type == pafs.FileType.NotFound:
        raise DataError(f"{url}: no such file, bucket or key; check the URL (and AWS_ENDPOINT_URL for an "
                        "S3-compatible server)")
    return fs, path, entry


def _why(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:200]


@contextmanager
def local_copy(url: str) -> Iterator[Path]:
    """The file at ``url`` copied to a local temporary file (same suffix), removed afterwards."""
    from pyarrow import fs as pafs

    fs, path, what = found(url)
    if what.type != pafs.FileType.File:
        raise DataError(f"{url}: a folder; give the URL of a file (a folder of Parquet files is one table)")
    fd, tmp = tempfile.mkstemp(prefix="netwright-", suffix=Path(path).suffix)
    try:
        with os.fdopen(fd, "wb") as out, fs.open_input_stream(path) as src:
            shutil.copyfileobj(src, out, 1 << 20)
        yield Path(tmp)
    except OSError as e:
        raise DataError(f"{url}: cannot be read ({_why(e)})") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def check_writable(url: str) -> None:
    """Refuse, before any work, a URL in a bucket that does not exist (S3, GCS: the first part of
    the path; other file systems make their folders as they write)."""
    from pyarrow import fs as pafs

    fs, path = filesystem(url)
    bucket = path.lstrip("/").split("/", 1)[0]
    if fs.type_name not in ("s3", "gcs") or not bucket:
        return
    try:
        missing = fs.get_file_info(bucket).type == pafs.FileType.NotFound
    except OSError as e:
        raise DataError(f"{url}: cannot be written ({_why(e)}); check the bucket and the credentials") from None
    if missing:
        raise DataError(f"{url}: cannot be written: no bucket '{bucket}'; create it or check the URL (and "
                        "AWS_ENDPOINT_URL for an S3-compatible server)")


def upload(local: Path, url: str) -> None:
    """Copy a finished local file to ``url`` (one object written whole: a reader never sees part of it)."""
    fs, path = filesystem(url)
    try:
        with open(local, "rb") as src, fs.open_output_stream(path) as out:
            shutil.copyfileobj(src, out, 1 << 20)
    except OSError as e:
        raise DataError(f"{url}: cannot be written ({_why(e)}); check the bucket and the credentials") from None


def read_parquet(where: Location) -> Any:
    """A Parquet file, or a folder (prefix) of Parquet files with hive ``key=value`` partitions as
    columns, local or at a URL, as one Arrow table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if is_url(where):
        fs, path, _ = found(str(where))
    else:
        fs, path = None, str(where)
    try:
        return pq.read_table(path, filesystem=fs, partitioning="hive")
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"{where}: not a readable Parquet file or folder ({_why(e)})") from None
