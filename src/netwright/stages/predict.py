"""The ``predict`` stage: raw inputs (CSV, NumPy, image, sound, text) -> predictions a person reads;
``predict_file``: a table file of any size streamed into a prediction file, resumable.

The run's saved preprocessing (``data.json``) is applied to the inputs (``netwright.data.inputs``);
the run's kind decodes the outputs (labels and probabilities, values, boxes, masks)."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.chunks import INPUTS, OUTPUTS, ArrowColumns, count_rows, flatten, join_parts, read_chunks, resume_parts, write_part
from ..data.derive import input_columns
from ..data.images import IMAGE_SUFFIXES
from ..data.inputs import encode_inputs, filled_note, unseen_note
from ..data.preprocess import arrow_cells
from ..data.location import check_writable, is_url, local_copy, upload
from ..data.tabular import read_csv
from ..errors import DataError, NetwrightError
from ..run import WEIGHTS, Run
from ..tasks import run_task


ON_ERROR = ("null", "skip", "stop")  # a row that cannot be predicted: an error column, left out, or refused


def predict(run: Run | str | os.PathLike, inputs: Any, batch_size: int = 1024,
            coverage: float | None = None, on_error: str = "stop") -> list[dict[str, Any]]:
    """Predictions for raw inputs, one dict per example.

    Classification: ``label``, ``class`` (index) and ``probabilities`` per class name
    (temperature-scaled when the run has ``calibration.json``). Regression: ``prediction`` in the
    target's units. Detection: ``objects``, each with its ``label``, ``score`` and ``box`` (x1, y1,
    x2, y2 in pixels). ``coverage`` (e.g. 0.9): split-conformal ``set`` (class names) or
    ``interval`` ``[lo, hi]`` per example, fitted on the run's validation split. ``on_error``
    (table rows): ``stop`` raises on the first row that cannot be read; ``null`` predicts every
    other row and gives that one empty fields and an ``error`` (every row then has one, ``None``
    when it was predicted); ``skip`` leaves it out.
    """
    return Predictor(run, coverage, batch_size, on_error)(inputs)


class Predictor:
    """A run's model, temperature and conformal calibration, loaded once, for many calls on raw
    inputs (``predict`` makes one per call; bulk prediction one per file). ``failed`` counts the
    rows ``on_error`` let through, ``first_error`` says why the first of them failed."""

    def __init__(self, run: Run | str | os.PathLike, coverage: float | None = None, batch_size: int = 1024,
                 on_error: str = "stop"):
        run = run if isinstance(run, Run) else Run.open(run)
        if coverage is not None:
            from ..conformal import check_coverage

            check_coverage(coverage)
        if on_error not in ON_ERROR:
            raise NetwrightError(f"--on-error {on_error}: choose {', '.join(ON_ERROR)}")
        self.run, self.info, self.batch_size, self.on_error = run, run.info, batch_size, on_error
        self.failed, self.first_error, self._empty = 0, None, None
        self.task = run_task(run)
        self.task.require("predict", run)
        self.model = run.load_model()
        self.task.prepare(run, self.model, coverage)

    def __call__(self, inputs: Any, source: str | None = None, first_row: int = 1) -> list[dict[str, Any]]:
        info = self.info
        table = inputs  # the columns as given: a fairness-thresholds run decides by their sensitive ones
        tabular = info.preprocess["kind"] == "table"
        if tabular and isinstance(inputs, (str, os.PathLike)) and \
                Path(inputs).suffix.lower() == ".csv" and Path(inputs).is_file():
            table = read_csv(Path(inputs))
        source = source or (str(inputs) if table is not inputs else "input")
        try:
            x = torch.from_numpy(encode_inputs(info, table, source))
        except DataError as e:
            if self.on_error == "stop" or not isinstance(table, dict) or not tabular:
                raise
            return self._row_by_row(table, first_row, e)
        if tabular and isinstance(table, dict):  # say when a prediction rests on a filled value or a new category
            for note in (filled_note(info.preprocess, table), unseen_note(info.preprocess, table)):
                if note:
                    print(f"note: {note}", file=sys.stderr)
        if len(x) == 0:
            where = f"{inputs}: " if isinstance(inputs, (str, os.PathLike)) else ""
            raise DataError(f"{where}no inputs to predict (an empty file or folder); give at least one example")
        return self.outputs(x, table)

    def _row_by_row(self, table: dict[str, list[Any]], first_row: int, problem: DataError) -> list[dict[str, Any]]:
        """A table with rows that cannot be read: each row encoded alone, the others predicted, the
        failed ones as ``on_error`` says (an ``error`` field on every row, or left out). When no
        row can be read (a missing column, a file of bad rows), ``problem`` is raised: that is the
        input's fault, not a row's."""
        import re

        cells = arrow_cells(table.table) if isinstance(table, ArrowColumns) else \
            {k: list(np.atleast_1d(v)) for k, v in table.items()}
        if any(c not in cells for c in input_columns(self.info.preprocess)):
            raise problem  # a column the model needs is not there at all
        n = len(next(iter(cells.values()), []))
        xs, good, errors = [], [], {}
        for i in range(n):
            try:
                xs.append(encode_inputs(self.info, {k: [v[i]] for k, v in cells.items()}, "\0"))
                good.append(i)
            except DataError as e:  # the message of a one-row table, its row numbered in the file
                errors[i] = f"row {first_row + i}: " + re.sub(r" row 1\b", "", str(e).removeprefix("\0: "), count=1)
        if not good:
            raise problem
        self.failed += len(errors)
        self.first_error = self.first_error or errors[min(errors)]
        predicted = iter(self.outputs(torch.from_numpy(np.concatenate(xs)), {k: [v[i] for i in good]
                                                                             for k, v in cells.items()})
                         if good else [])
        if self.on_error == "skip":
            return list(predicted)
        if self._empty is None:  # the fields of a prediction, once: a row that failed gets them empty
            self._empty = _emptied(self.outputs(torch.zeros((1, *self.info.input_shape)))[0])
        empty = self._empty
        return [{**empty, "error": errors[i]} if i in errors else {**next(predicted), "error": None} for i in range(n)]

    def outputs(self, x: torch.Tensor, table: Any = None) -> list[dict[str, Any]]:
        """Predictions for encoded inputs ``x`` (``table``: the columns they came from, if any)."""
        model, n = self.model, self.batch_size
        with torch.no_grad():
            out = torch.cat([model(x[i:i + n]) for i in range(0, len(x), n)])
        return self.task.decode(out, table)


def _emptied(row: dict[str, Any]) -> dict[str, Any]:
    """A prediction's fields with no values: the shape of a row that could not be predicted."""
    def empty(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: empty(x) for k, x in v.items()}
        if isinstance(v, list):
            return [None] * len(v) if all(isinstance(x, (int, float)) for x in v) else []
        return None
    return {k: empty(v) for k, v in row.items()}


FOLDER_CHUNK = 1024  # images a chunk of a folder's bulk prediction


def image_files(folder: Path) -> list[Path]:
    """Every image file under ``folder`` (sub-folders too), in name order."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def predict_file(run: Run | str | os.PathLike, inputs: str | os.PathLike, out: str | os.PathLike,
                 id_column: str | None = None, chunk_rows: int = 65536, coverage: float | None = None,
                 progress: Any = None, on_error: str = "null") -> dict[str, Any]:
    """Predict every row of a table file (a tabular run), or every image under a folder (an image
    run), into ``out`` (.csv, .parquet or .jsonl) in chunks of ``chunk_rows`` rows (at most
    ``FOLDER_CHUNK`` images); ``id_column`` is copied into the output beside each prediction (a
    folder's predictions carry each image's path, ``file``). A job stopped part-way resumes from
    its last whole chunk. ``on_error``: a row (or image) that cannot be read is written with
    empty fields and its ``error``, every row having an ``error`` column (``null``, the default),
    is left out (``skip``), or stops the job (``stop``). Returns ``{rows, chunks, resumed, out, failed, first_error}`` (``failed``: rows
    of this call that could not be predicted). ``progress``: a callable
    ``(rows_done, rows_total_or_None)`` called after each chunk."""
    run = run if isinstance(run, Run) else Run.open(run)
    if is_url(inputs) or is_url(out):
        return _predict_remote(run, str(inputs) if is_url(inputs) else Path(inputs), str(out) if is_url(out) else Path(out),
                               id_column=id_column, chunk_rows=chunk_rows, coverage=coverage, progress=progress,
                               on_error=on_error)
    src, out = Path(inputs), Path(out)
    kind, folder = run.info.preprocess.get("kind"), src.is_dir()
    if kind not in ("table", "image") or (kind == "image") != folder:
        what = "a folder of images" if folder else "a table file"
        raise NetwrightError(f"bulk prediction streams table files into a tabular run and folders of images into an "
                             f"image run; this model takes {run.info.modality} inputs and {src} is {what} (predict "
                             "it without --out FILE.parquet/.jsonl, or with --out FILE.json)")
    if not folder and not src.is_file():
        raise DataError(f"{src}: no such file")
    fmt = out.suffix.lower()
    if not folder and src.suffix.lower() not in INPUTS:
        raise DataError(f"{src}: bulk prediction reads {', '.join(INPUTS)} files or a folder of images")
    if folder and id_column is not None:
        raise NetwrightError("--id names a column of a table file; the predictions of a folder carry each image's "
                             "path (file)")
    if fmt not in OUTPUTS:
        raise NetwrightError(f"--out {out}: write predictions to a {', '.join(OUTPUTS)} file (or .json)")
    if chunk_rows < 1:
        raise NetwrightError(f"chunk_rows {chunk_rows}: give a positive number of rows")
    predictor = Predictor(run, coverage, on_error=on_error)
    parts_dir = out.with_name(out.name + ".parts")
    stat = src.stat()
    files = image_files(src) if folder else []
    chunk_rows = min(chunk_rows, FOLDER_CHUNK) if folder else chunk_rows
    manifest = {"input": str(src.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                "run": str(run.home.resolve()), "weights_mtime_ns": run.file(WEIGHTS).stat().st_mtime_ns,
                "chunk_rows": chunk_rows, "id": id_column, "coverage": coverage, "format": fmt, "on_error": on_error}
    if folder:  # the files, not the folder's own size and time, say whether it is the same input
        manifest |= {"size": len(files), "mtime_ns": max((f.stat().st_mtime_ns for f in files), default=0),
                     "files": hashlib.sha256("\n".join(map(str, files)).encode()).hexdigest()}
    done = resume_parts(parts_dir, manifest)
    total = len(files) if folder else count_rows(src)
    n = done * chunk_rows
    if progress and done:
        progress(n, total)
    chunks = _image_chunks(predictor, src, files, n, chunk_rows) if folder else \
        _table_chunks(predictor, src, n, chunk_rows, id_column)
    try:
        for i, records in enumerate(chunks, start=done):
            write_part(parts_dir / f"part-{i:06d}{fmt}", records, fmt)
            n += len(records)
            if progress:
                progress(n, total)
    except DataError:  # the input's fault: a rerun would stop there again, so nothing is kept to resume
        shutil.rmtree(parts_dir, ignore_errors=True)
        raise
    parts = sorted(parts_dir.glob(f"part-*{fmt}"))
    if not parts:
        shutil.rmtree(parts_dir, ignore_errors=True)
        raise DataError(f"{src}: no images under it" if folder else f"{src}: no rows to predict; give a header row "
                        "and data rows")
    join_parts(parts, out, fmt)
    shutil.rmtree(parts_dir, ignore_errors=True)
    return {"rows": n, "chunks": len(parts), "resumed": done, "out": str(out), "failed": predictor.failed,
            "first_error": predictor.first_error}


def _predict_remote(run: Run, inputs: str | Path, out: str | Path, **options: Any) -> dict[str, Any]:
    """``predict_file`` with a table at a URL (copied to a temporary file first, so a stopped job
    starts again) or into a URL (written here, in a staging folder of the system's temporary folder
    that a stopped job with a local input resumes from, then uploaded whole)."""
    import contextlib
    import tempfile

    if isinstance(out, str):
        check_writable(out)
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(local_copy(inputs)) if isinstance(inputs, str) else inputs
        if isinstance(out, str):
            staging = Path(tempfile.gettempdir()) / f"netwright-predict-{hashlib.sha256(out.encode()).hexdigest()[:16]}"
            staging.mkdir(exist_ok=True)
            local = staging / Path(out).name
        else:
            local = out
        summary = predict_file(run, src, local, **options)
        if isinstance(out, str):
            upload(local, out)
            shutil.rmtree(staging, ignore_errors=True)
    return summary | {"out": str(out)}


def _table_chunks(predictor: Predictor, src: Path, start: int, rows: int,
                  id_column: str | None) -> Iterator[list[dict[str, Any]]]:
    """The flat prediction records of a table file's chunks from row ``start`` on."""
    n = start
    for table in read_chunks(src, rows, skip=start):
        if id_column is not None and id_column not in table:
            raise DataError(f"{src}: no column '{id_column}' (--id); columns are {', '.join(table)}")
        size = table.table.num_rows if isinstance(table, ArrowColumns) else len(next(iter(table.values()), []))
        rows = predictor(table, source=f"{src} rows {n + 1}-{n + size}", first_row=n + 1)
        if predictor.on_error == "null":  # every chunk has the column, whether or not a row of it failed
            rows = [{**r, "error": r.get("error")} for r in rows]
        records = flatten(rows)
        if id_column is not None:
            records = [{id_column: v} | r for v, r in zip(table[id_column], records)]
        n += size
        yield records


def _image_chunks(predictor: Predictor, folder: Path, files: list[Path], start: int,
                  size: int) -> Iterator[list[dict[str, Any]]]:
    """The flat prediction records of a folder's images from file ``start`` on, each with its path."""
    for first in range(start, len(files), size):
        batch, xs, errors = files[first:first + size], [], {}
        for f in batch:
            try:
                xs.append(encode_inputs(predictor.info, f))
            except DataError as e:
                if predictor.on_error == "stop":
                    raise DataError(f"{e}; --on-error skip leaves such a file out, null writes it with its error") from None
                errors[f] = str(e)
        predictor.failed += len(errors)
        predictor.first_error = predictor.first_error or next(iter(errors.values()), None)
        rows = iter(flatten(predictor.outputs(torch.from_numpy(np.concatenate(xs)))) if xs else [])
        out = []
        for f in batch:
            name = {"file": str(f.relative_to(folder))}
            if f not in errors:
                out.append(name | next(rows) | ({"error": None} if predictor.on_error == "null" else {}))
            elif predictor.on_error == "null":
                out.append(name | {"error": errors[f]})
        yield out
