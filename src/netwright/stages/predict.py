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
from ..data.images import IMAGE_SUFFIXES
from ..data.inputs import encode_inputs, filled_note
from ..data.tabular import read_csv
from ..errors import DataError, NetwrightError
from ..run import WEIGHTS, Run
from ..tasks import run_task


def predict(run: Run | str | os.PathLike, inputs: Any, batch_size: int = 1024,
            coverage: float | None = None) -> list[dict[str, Any]]:
    """Predictions for raw inputs, one dict per example.

    Classification: ``label``, ``class`` (index) and ``probabilities`` per class name
    (temperature-scaled when the run has ``calibration.json``). Regression: ``prediction`` in the
    target's units. Detection: ``objects``, each with its ``label``, ``score`` and ``box`` (x1, y1,
    x2, y2 in pixels). ``coverage`` (e.g. 0.9): split-conformal ``set`` (class names) or
    ``interval`` ``[lo, hi]`` per example, fitted on the run's validation split.
    """
    return Predictor(run, coverage, batch_size)(inputs)


class Predictor:
    """A run's model, temperature and conformal calibration, loaded once, for many calls on raw
    inputs (``predict`` makes one per call; bulk prediction one per file)."""

    def __init__(self, run: Run | str | os.PathLike, coverage: float | None = None, batch_size: int = 1024):
        run = run if isinstance(run, Run) else Run.open(run)
        if coverage is not None:
            from ..conformal import check_coverage

            check_coverage(coverage)
        self.run, self.info, self.batch_size = run, run.info, batch_size
        self.task = run_task(run)
        self.task.require("predict", run)
        self.model = run.load_model()
        self.task.prepare(run, self.model, coverage)

    def __call__(self, inputs: Any, source: str | None = None) -> list[dict[str, Any]]:
        info = self.info
        table = inputs  # the columns as given: a fairness-thresholds run decides by their sensitive ones
        tabular = info.preprocess["kind"] == "table"
        if tabular and isinstance(inputs, (str, os.PathLike)) and \
                Path(inputs).suffix.lower() == ".csv" and Path(inputs).is_file():
            table = read_csv(Path(inputs))
        x = torch.from_numpy(encode_inputs(info, table, source or (str(inputs) if table is not inputs else "input")))
        if tabular and isinstance(table, dict):  # say when a prediction rests on a filled value
            note = filled_note(info.preprocess, table)
            if note:
                print(f"note: {note}", file=sys.stderr)
        if len(x) == 0:
            where = f"{inputs}: " if isinstance(inputs, (str, os.PathLike)) else ""
            raise DataError(f"{where}no inputs to predict (an empty file or folder); give at least one example")
        return self.outputs(x, table)

    def outputs(self, x: torch.Tensor, table: Any = None) -> list[dict[str, Any]]:
        """Predictions for encoded inputs ``x`` (``table``: the columns they came from, if any)."""
        model, n = self.model, self.batch_size
        with torch.no_grad():
            out = torch.cat([model(x[i:i + n]) for i in range(0, len(x), n)])
        return self.task.decode(out, table)


FOLDER_CHUNK = 1024  # images a chunk of a folder's bulk prediction


def image_files(folder: Path) -> list[Path]:
    """Every image file under ``folder`` (sub-folders too), in name order."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def predict_file(run: Run | str | os.PathLike, inputs: str | os.PathLike, out: str | os.PathLike,
                 id_column: str | None = None, chunk_rows: int = 65536, coverage: float | None = None,
                 progress: Any = None) -> dict[str, Any]:
    """Predict every row of a table file (a tabular run), or every image under a folder (an image
    run), into ``out`` (.csv, .parquet or .jsonl) in chunks of ``chunk_rows`` rows (at most
    ``FOLDER_CHUNK`` images); ``id_column`` is copied into the output beside each prediction (a
    folder's predictions carry each image's path, ``file``). A job stopped part-way resumes from
    its last whole chunk. Returns ``{rows, chunks, resumed, out}``. ``progress``: a callable
    ``(rows_done, rows_total_or_None)`` called after each chunk."""
    run = run if isinstance(run, Run) else Run.open(run)
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
    predictor = Predictor(run, coverage)
    parts_dir = out.with_name(out.name + ".parts")
    stat = src.stat()
    files = image_files(src) if folder else []
    chunk_rows = min(chunk_rows, FOLDER_CHUNK) if folder else chunk_rows
    manifest = {"input": str(src.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                "run": str(run.home.resolve()), "weights_mtime_ns": run.file(WEIGHTS).stat().st_mtime_ns,
                "chunk_rows": chunk_rows, "id": id_column, "coverage": coverage, "format": fmt}
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
    for i, records in enumerate(chunks, start=done):
        write_part(parts_dir / f"part-{i:06d}{fmt}", records, fmt)
        n += len(records)
        if progress:
            progress(n, total)
    parts = sorted(parts_dir.glob(f"part-*{fmt}"))
    if not parts:
        shutil.rmtree(parts_dir, ignore_errors=True)
        raise DataError(f"{src}: no images under it" if folder else f"{src}: no rows to predict; give a header row "
                        "and data rows")
    join_parts(parts, out, fmt)
    shutil.rmtree(parts_dir, ignore_errors=True)
    return {"rows": n, "chunks": len(parts), "resumed": done, "out": str(out)}


def _table_chunks(predictor: Predictor, src: Path, start: int, rows: int,
                  id_column: str | None) -> Iterator[list[dict[str, Any]]]:
    """The flat prediction records of a table file's chunks from row ``start`` on."""
    n = start
    for table in read_chunks(src, rows, skip=start):
        if id_column is not None and id_column not in table:
            raise DataError(f"{src}: no column '{id_column}' (--id); columns are {', '.join(table)}")
        size = table.table.num_rows if isinstance(table, ArrowColumns) else len(next(iter(table.values()), []))
        records = flatten(predictor(table, source=f"{src} rows {n + 1}-{n + size}"))
        if id_column is not None:
            records = [{id_column: v} | r for v, r in zip(table[id_column], records)]
        n += size
        yield records


def _image_chunks(predictor: Predictor, folder: Path, files: list[Path], start: int,
                  size: int) -> Iterator[list[dict[str, Any]]]:
    """The flat prediction records of a folder's images from file ``start`` on, each with its path."""
    for first in range(start, len(files), size):
        batch = files[first:first + size]
        x = torch.from_numpy(np.concatenate([encode_inputs(predictor.info, f) for f in batch]))
        yield [{"file": str(f.relative_to(folder))} | r for f, r in zip(batch, flatten(predictor.outputs(x)))]
