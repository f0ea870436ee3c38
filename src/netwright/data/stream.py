"""Data bigger than memory, read a block at a time, never whole: a Parquet file's row groups
(:class:`TableSource`), or labelled examples, such as the files of an image folder, in blocks of
a seeded order (:class:`ExampleSource`; their headers are read first, their pixels as training
needs them, and the normalisation is fitted on the first ``fit_rows`` training examples).

* **Splits** are a hash of each row's index and ``split_seed``, so any row's split is known
  without reading the file (not stratified: a streamed split is random).
* **Preprocessing** (column kinds, missing-cell fills, normalisation, the target's scaling) is
  fitted on the first ``fit_rows`` training rows; the categories of categorical columns and the
  classes of the target are read from the whole file first (those columns only), so no value of
  the file is unknown to the model.
* **Batches**: an epoch visits the row groups in a seeded order and each group's rows of the
  split in a seeded order (a block shuffle); the groups are decoded ahead in worker processes
  (``workers``) in that order, so what a batch holds depends on the seed alone, never on the
  number of workers, and a checkpoint inside an epoch resumes at the same batch.
* **Memory** holds the decoded groups in flight and a sample of each split (``sample_rows``:
  what the stages that read examples, such as explain or audit, work on); every other row stays
  on disk, unless the whole table fits in ``CACHE_BYTES`` once decoded: then each group is
  decoded once, in the first epoch, and kept for the rest of the run.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .info import Dataset, DataInfo
from .missing import cell_text
from .preprocess import arrow_absent

SPLITS = ("train", "val", "test")


def split_codes(start: int, n: int, val: float, test: float, seed: int) -> np.ndarray:
    """The split of rows ``start .. start + n`` (0 train, 1 val, 2 test): splitmix64 of the row
    index and the seed, read as a uniform number in [0, 1)."""
    with np.errstate(over="ignore"):
        z = np.arange(start, start + n, dtype=np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15) & (2**64 - 1))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    u = (z >> np.uint64(11)).astype(np.float64) / float(2**53)
    return np.where(u < test, 2, np.where(u < test + val, 1, 0)).astype(np.int8)


def by_split(x: np.ndarray, y: np.ndarray, codes: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """A block's rows as ``{split code: (x, y)}``, in block order."""
    return {c: (x[codes == c], y[codes == c]) for c in (0, 1, 2) if (codes == c).any()}


class Source:
    """Rows in blocks (a Parquet file's row groups, a folder's images in a seeded order): each
    block's size, its rows' splits, and the block decoded as the model reads it."""

    path: Path
    rows: list[int]  # rows in each block
    counts: np.ndarray  # (blocks, 3): rows of each split in each block, those that train or score

    def codes(self, g: int) -> np.ndarray:
        """The split code of each of block ``g``'s rows (0 train, 1 val, 2 test)."""
        raise NotImplementedError

    def decode(self, g: int, state: dict[str, Any]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Block ``g`` as ``{split code: (x, y)}`` in block order, normalised with ``state["pre"]``."""
        raise NotImplementedError

    def where(self, g: int) -> str:
        """Block ``g`` in words, for an error line."""
        raise NotImplementedError


class TableSource(Source):
    """A Parquet file's row groups: their sizes and where each split's rows are."""

    def __init__(self, path: Path, columns: list[str], val: float, test: float, seed: int):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path, self.columns = Path(path), columns
        try:
            meta = pq.ParquetFile(self.path).metadata
        except (pa.ArrowInvalid, OSError) as e:
            raise DataError(f"{path}: not a readable Parquet file ({str(e).splitlines()[0][:160]})") from None
        self.rows = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        self.offsets = np.concatenate([[0], np.cumsum(self.rows)]).astype(np.int64)
        self.val, self.test, self.seed = val, test, seed
        self.counts = np.zeros((len(self.rows), 3), dtype=np.int64)  # rows of each split in each group: count()

    def codes(self, g: int) -> np.ndarray:
        return split_codes(int(self.offsets[g]), self.rows[g], self.val, self.test, self.seed)

    def count(self, g: int, labelled: np.ndarray) -> None:
        """Group ``g``'s rows of each split, those with a target (``labelled``) only."""
        self.counts[g] = np.bincount(self.codes(g)[labelled], minlength=3)

    def read(self, g: int, columns: list[str] | None = None) -> Any:
        import pyarrow.parquet as pq

        return pq.ParquetFile(self.path).read_row_group(g, columns=columns or self.columns)

    def where(self, g: int) -> str:
        return f"row group {g} of {self.path}"

    def decode(self, g: int, state: dict[str, Any]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        from .preprocess import encode_arrow, normalize

        pre, target = state["pre"], state["target"]
        where = f"{self.path} row group {g}"
        table, codes = self.read(g), self.codes(g)
        keep = ~arrow_absent(table.column(target))  # as training drops them
        if not keep.all():
            table, codes = table.filter(keep), codes[keep]
        x = normalize(pre, encode_arrow(pre["columns"], table, where, pre.get("derived")))
        return by_split(x, _targets(table.column(target), state["classes"], pre.get("target"), where), codes)


class ExampleSource(Source):
    """Labelled examples (image files, rows of an array) in blocks of a seeded order, so that every
    block is a random mix of the classes however the examples were listed."""

    def __init__(self, labels: np.ndarray, codes: np.ndarray, block: int, seed: int):
        n = len(labels)
        self.labels, self.all_codes = labels, codes
        self.order = np.random.default_rng([seed, 1]).permutation(n)
        self.offsets = np.append(np.arange(0, n, block), n).astype(np.int64)
        self.rows = np.diff(self.offsets).tolist()
        self.counts = np.stack([np.bincount(self.codes(g), minlength=3) for g in range(len(self.rows))])

    def block(self, g: int) -> np.ndarray:
        return self.order[self.offsets[g]:self.offsets[g + 1]]

    def codes(self, g: int) -> np.ndarray:
        return self.all_codes[self.block(g)]

    def load(self, idx: np.ndarray) -> np.ndarray:
        """Examples ``idx`` as float32 ``(n, *shape)`` before normalisation."""
        raise NotImplementedError

    def decode(self, g: int, state: dict[str, Any]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        from .preprocess import normalize

        idx = self.block(g)
        return by_split(normalize(state["pre"], self.load(idx)), self.labels[idx], self.all_codes[idx])


class ImageFiles(ExampleSource):
    """Image files, decoded (and sized) in the worker that reads them."""

    def __init__(self, root: Path, files: list[str], labels: np.ndarray, codes: np.ndarray, shape: tuple[int, ...],
                 size: tuple[int, int] | None, fit: str, mode: str, seed: int):
        self.path, self.files, self.shape = Path(root), files, shape
        self.size, self.fit, self.mode = size, fit, mode
        # blocks of about 16 MiB decoded: a few hundred photos, a thousand small images
        per = int(np.prod(shape)) * 4
        super().__init__(labels, codes, max(32, min(1024, (16 << 20) // per)), seed)

    def load(self, idx: np.ndarray) -> np.ndarray:
        from .images import _decode

        out = np.empty((len(idx), *self.shape), dtype=np.float32)
        for j, i in enumerate(idx):
            a, _, (w, h) = _decode((self.files[i], self.size, self.fit, self.mode, False))
            a = a[: self.shape[0]]  # grey images read as RGB keep one channel
            if a.shape != self.shape:
                raise DataError(f"{self.files[i]} is {w}x{h}, the other images {self.shape[2]}x{self.shape[1]}; set "
                                f"data.image_size: [{self.shape[1]}, {self.shape[2]}] to size all images")
            out[j] = a
        return out

    def where(self, g: int) -> str:
        idx = self.block(g)
        return f"block {g} of {self.path} ({self.files[idx[0]]} and {len(idx) - 1} other images)"


class ArrayExamples(ExampleSource):
    """Rows of an array in memory (unsigned bytes are read as float32 a block at a time)."""

    def __init__(self, x: np.ndarray, labels: np.ndarray, codes: np.ndarray, source: str, seed: int):
        self.x, self.path = x, Path(source)
        super().__init__(labels, codes, 2048, seed)

    def load(self, idx: np.ndarray) -> np.ndarray:
        return self.x[idx].astype(np.float32)

    def where(self, g: int) -> str:
        return f"block {g} of {self.path}"


# ---------------------------------------------------------------------- decoding a group (in workers)

_worker: dict[str, Any] = {}


def _init(state: dict[str, Any]) -> None:
    _worker.clear()
    _worker.update(state)


def decode(g: int, state: dict[str, Any] | None = None) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Block ``g`` of the state's source, decoded (in a worker: the state it was started with)."""
    s = state or _worker
    return s["source"].decode(g, s)


def _numbers(column: Any) -> np.ndarray:
    """A numeric target column as float64."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    return np.array([float(cell_text(v)) for v in column.to_pylist()], dtype=np.float64)


def _targets(column: Any, classes: list[str] | None, scale: dict[str, float] | None, where: str) -> np.ndarray:
    """A group's targets (no missing one): class indices, or the scaled number."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if classes is None:
        return ((_numbers(column) - scale["mean"]) / scale["std"]).astype(np.float32)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        text = pc.utf8_trim_whitespace(column)
    elif pa.types.is_integer(column.type):
        text = pc.cast(column, pa.string())
    else:  # floats and bools are named as Python writes them
        text = pa.array([cell_text(v) for v in column.to_pylist()], pa.string())
    index = np.asarray(pc.fill_null(pc.index_in(text, value_set=pa.array(classes, pa.string())), -1)
                       .to_numpy(zero_copy_only=False), dtype=np.int64)
    if (index < 0).any():
        raise DataError(f"{where}: target value '{text[int(np.argmax(index < 0))].as_py()}' was not in the file "
                        "when it was first read")
    return index


# ---------------------------------------------------------------------- a split, streamed


class StreamedSplit:
    """One split of streamed data: its length, its batches in a seeded block-shuffled order, and
    its first ``sample_rows`` rows held in memory (``x``, ``y``, read when first asked for) for the
    stages that read examples."""

    def __init__(self, state: dict[str, Any], code: int, sample_rows: int, workers: int):
        self.state, self.code, self.workers, self.sample_rows = state, code, workers, sample_rows
        self.source: Source = state["source"]
        self.groups: dict[str, np.ndarray] = {}
        self._pool: Any = None
        self._sample: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def x(self) -> torch.Tensor:
        return self.sample()[0]

    @property
    def y(self) -> torch.Tensor:
        return self.sample()[1]

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The split's first ``sample_rows`` rows in block order, decoded in this process (from the
        kept blocks when there are)."""
        if self._sample is None:
            xs, ys, n = [], [], 0
            for xb, yb in StreamedSplit(self.state, self.code, 0, 1).batches(4096, None):
                xs.append(xb)
                ys.append(yb)
                n += len(yb)
                if n >= self.sample_rows:
                    break
            self._sample = torch.cat(xs)[: self.sample_rows], torch.cat(ys)[: self.sample_rows]
        return self._sample

    def __len__(self) -> int:
        return int(self.source.counts[:, self.code].sum())

    def _groups(self) -> list[int]:
        """The groups (in file order) that hold rows of this split."""
        return [g for g in range(len(self.source.rows)) if self.source.counts[g, self.code]]

    def shard(self, rank: int, world: int) -> list[int]:
        """The groups of this split that process ``rank`` of ``world`` reads, the same on every
        rank and every epoch: dealt largest first to the rank holding the fewest rows so far."""
        groups = self._groups()
        held, mine = [0] * world, [[] for _ in range(world)]
        for g in sorted(groups, key=lambda g: (-int(self.source.counts[g, self.code]), g)):
            r = min(range(world), key=lambda r: (held[r], r))
            mine[r].append(g)
            held[r] += int(self.source.counts[g, self.code])
        return sorted(mine[rank])

    def shard_rows(self, world: int) -> list[int]:
        """The rows of each rank's :meth:`shard`."""
        return [int(self.source.counts[self.shard(r, world), self.code].sum()) for r in range(world)]

    def order(self, seed: int, groups: list[int] | None = None) -> tuple[list[int], dict[int, np.ndarray]]:
        """The groups holding this split (or ``groups`` of them) in the epoch's order, and each one's row order."""
        if groups is None:
            groups = self._groups()
        rng = np.random.default_rng(seed)
        groups = [groups[i] for i in rng.permutation(len(groups))]
        rows = {g: np.random.default_rng([seed, g]).permutation(int(self.source.counts[g, self.code]))
                for g in groups}
        return groups, rows

    def batches(self, batch_size: int, seed: int | None = None, start: int = 0, stop: int | None = None,
                shard: tuple[int, int] | None = None):
        """``(x, y)`` batches ``start .. stop`` of an epoch: block-shuffled with ``seed``, in file
        order without one; the groups are decoded ahead by the workers. ``shard``: (rank, world):
        only the groups of that rank's :meth:`shard` are read."""
        only = self.shard(*shard) if shard else None
        if seed is None:
            groups = only if only is not None else self._groups()
            rows = {g: np.arange(int(self.source.counts[g, self.code])) for g in groups}
        else:
            groups, rows = self.order(seed, only)
        sizes = np.array([len(rows[g]) for g in groups], dtype=np.int64)
        ends = np.cumsum(sizes)
        first_row = start * batch_size
        skip = int(np.searchsorted(ends, first_row, side="right"))  # groups wholly before the start
        position = int(ends[skip - 1]) if skip else 0
        stop = stop if stop is not None else -(-int(ends[-1]) // batch_size) if len(ends) else 0
        buf_x: np.ndarray | None = None
        buf_y: np.ndarray | None = None
        at, b = 0, start
        for g, decoded in self._decoded(groups[skip:]):
            x, y = decoded[self.code]
            order = rows[g]
            x, y = x[order], y[order]
            if position < first_row:  # the part of the first group before the start batch
                cut = first_row - position
                x, y, position = x[cut:], y[cut:], position + cut
            if buf_x is None or at >= len(buf_x):
                buf_x, buf_y = x, y
            else:  # the rest of the group before, then this one
                buf_x, buf_y = np.concatenate([buf_x[at:], x]), np.concatenate([buf_y[at:], y])
            at = 0
            while len(buf_x) - at >= batch_size and b < stop:
                yield torch.from_numpy(np.ascontiguousarray(buf_x[at:at + batch_size])), \
                    torch.from_numpy(np.ascontiguousarray(buf_y[at:at + batch_size]))
                at, b = at + batch_size, b + 1
            if b >= stop:
                return
        if buf_x is not None and at < len(buf_x) and b < stop:
            yield torch.from_numpy(np.ascontiguousarray(buf_x[at:])), torch.from_numpy(np.ascontiguousarray(buf_y[at:]))

    def _decoded(self, groups: list[int]):
        """``(group, decoded)`` in order: from the cache when the table fits it, else decoded (with
        workers, a few groups ahead)."""
        cache = self.state.get("cache")  # None: the decoded table would not fit (CACHE_BYTES)

        def keep(g: int, decoded: dict) -> dict:
            if cache is not None:
                cache[g] = decoded
            return decoded

        if self.workers <= 1:
            for g in groups:
                yield g, cache[g] if cache and g in cache else keep(g, decode(g, self.state))
            return
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        ahead: OrderedDict[int, Any] = OrderedDict()  # a future, or None for a group in the cache
        queue = iter(groups)

        def submit(g: int) -> None:
            if cache and g in cache:
                ahead[g] = None
                return
            if self._pool is None:
                worker_state = {k: v for k, v in self.state.items() if k != "cache"}
                self._pool = ProcessPoolExecutor(self.workers, initializer=_init, initargs=(worker_state,))
            ahead[g] = self._pool.submit(decode, g)

        for g in queue:
            submit(g)
            if len(ahead) >= 2 * self.workers:
                break
        while ahead:
            g, future = ahead.popitem(last=False)
            try:
                decoded = cache[g] if future is None else keep(g, future.result())
            except BrokenProcessPool:
                self.close()
                raise DataError(f"a worker process died (killed, or out of memory) while {self.source.where(g)} was "
                                "being decoded; train again, or with data.workers: 1") from None
            nxt = next(queue, None)
            if nxt is not None:
                submit(nxt)
            yield g, decoded

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __del__(self) -> None:
        self.close()


# ---------------------------------------------------------------------- the data set


def streamed_dataset(path: Path, name: str, target: str, options: dict[str, Any], val: float, test: float,
                     split_seed: int, normalize_inputs: bool, fit_rows: int, sample_rows: int,
                     workers: int) -> Dataset:
    """A Parquet table as a :class:`Dataset` whose splits stream (``options``: the csv loader's)."""
    import pyarrow.compute as pc

    from .missing import fit_imputation, impute, is_missing
    from .preprocess import arrow_cells, encode_arrow, fit_normalization
    from .tabular import table_dataset

    strategies = options.get("missing", "median")
    if "drop" in (strategies.values() if isinstance(strategies, dict) else [strategies]):
        raise DataError("data.missing: drop: a streamed table fills its missing cells (median, most_frequent or "
                        "constant); drop rows in a table read whole (data.stream: false)")
    if options.get("sensitive"):
        raise DataError("data.sensitive: a streamed table is not audited by group yet; drop it, or data.stream: false")
    import pyarrow.parquet as pq

    names = pq.ParquetFile(path).schema_arrow.names
    if target not in names:
        raise DataError(f"{path}: no column '{target}'; columns are {', '.join(names)}")
    src = TableSource(path, names, val, test, split_seed)
    for g in range(len(src.rows)):  # the target column alone: which rows have one
        src.count(g, ~arrow_absent(src.read(g, [target]).column(target)))
    if not src.counts[:, 0].sum():
        raise DataError(f"{path}: no rows with a target left to train on; lower data.val / data.test")
    # the column kinds from the first KIND_ROWS training rows (cell by cell), the encoders' fills
    # and scales from the first fit_rows (in Arrow)
    fitting = _first_training_rows(src, fit_rows, target)
    sample = arrow_cells(fitting.slice(0, KIND_ROWS))
    raw = table_dataset(sample, str(path), target, **options)
    # every category and class of the whole file, read column by column
    kinds = {c["name"]: c["kind"] for c in raw.preprocess["columns"]}
    wanted = [c for c, k in kinds.items() if k in ("categorical", "id")] + ([target] if raw.task != "regression" else [])
    seen: dict[str, set[str]] = {c: set() for c in wanted}
    if wanted:
        for g in range(len(src.rows)):
            part = src.read(g, wanted)
            for c in wanted:
                seen[c] |= {cell_text(v) for v in pc.unique(part.column(c)).to_pylist()}
    full = {c: sorted(v for v in vs if not is_missing(v)) for c, vs in seen.items()}
    classes = full.pop(target, None)
    raw = table_dataset(sample, str(path), target, **options, categories=full, classes=classes)
    pre = dict(raw.preprocess)
    x = encode_arrow(pre["columns"], fitting, str(path), pre.get("derived"))
    pre = fit_imputation(pre, x)
    if normalize_inputs:
        pre = fit_normalization(pre, impute(pre, x))
    if raw.task == "regression":
        y = _numbers(fitting.column(target))
        pre["target"] = {"mean": float(y.mean()), "std": float(y.std()) or 1.0}
    pre["stream"] = {"row_groups": len(src.rows), "fitted_on_rows": fitting.num_rows, "kinds_from_rows": len(raw.y),
                     "sample_rows": sample_rows}
    width = int(raw.x.shape[1]) + 2  # the inputs, the target (8 bytes)
    state = {"source": src, "pre": pre, "target": target,
             "classes": raw.class_names if raw.task != "regression" else None,
             "cache": {} if sum(src.rows) * width * 4 <= CACHE_BYTES else None}
    splits = {s: int(src.counts[:, i].sum()) for i, s in enumerate(SPLITS)}
    info = DataInfo(name=name, task=raw.task, modality="tabular", input_shape=(raw.x.shape[1],),
                    num_classes=len(raw.class_names) if raw.class_names else None, class_names=raw.class_names,
                    feature_names=raw.feature_names, target_name=target, preprocess=pre, splits=splits,
                    stratified=False, fingerprint=_fingerprint(path, src), source=str(path))
    return _dataset(info, state, sample_rows, workers)


def _decode_unnormalized(src: Source, blocks: Any, workers: int) -> list[dict[int, tuple[np.ndarray, np.ndarray]]]:
    """Blocks decoded before normalisation, by ``workers`` processes."""
    state = {"source": src, "pre": {"kind": "image"}}
    if workers <= 1:
        return [src.decode(g, state) for g in blocks]
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(workers, initializer=_init, initargs=(state,)) as pool:
        try:
            return list(pool.map(decode, blocks))
        except BrokenProcessPool:
            raise DataError(f"a worker process died (killed, or out of memory) while the first blocks of {src.path} "
                            "were being decoded; train again, or with data.workers: 1") from None


def _dataset(info: DataInfo, state: dict[str, Any], sample_rows: int, workers: int) -> Dataset:
    """The streamed splits of ``state``'s source."""
    splits = [StreamedSplit(state, code, sample_rows, workers) if info.splits[s] else None
              for code, s in enumerate(SPLITS)]
    return Dataset(info, *splits)


CACHE_BYTES = 512 << 20  # a table whose decoded rows fit is decoded once, in its first epoch, and kept
KIND_ROWS = 20_000  # training rows whose cells decide each column's kind (and the categories' order of discovery)


def _first_training_rows(src: TableSource, rows: int, target: str) -> Any:
    """The first ``rows`` training rows with a target, as one Arrow table."""
    import pyarrow as pa

    parts, taken = [], 0
    for g in range(len(src.rows)):
        if taken >= rows:
            break
        table, codes = src.read(g), src.codes(g)
        table = table.filter(pa.array((codes == 0) & ~arrow_absent(table.column(target))))
        parts.append(table.slice(0, rows - taken))
        taken += parts[-1].num_rows
    return pa.concat_tables(parts)


def _fingerprint(path: Path, src: TableSource) -> str:
    """The file's size, its row groups and the bytes of its first and last group, not all of it."""
    h = hashlib.sha256()
    h.update(str((os.path.getsize(path), src.rows)).encode())
    with open(path, "rb") as fh:
        h.update(fh.read(1 << 20))
        fh.seek(max(0, os.path.getsize(path) - (1 << 20)))
        h.update(fh.read())
    return h.hexdigest()[:16]


def streamed_examples(request: Any, name: str, val: float, test: float, split_seed: int,
                      normalize_inputs: bool) -> Dataset:
    """Labelled images (files of a folder, or an array) as a :class:`Dataset` whose splits stream.
    ``request.options``: ``labels``, ``class_names``, ``shape`` (one input), ``preprocess``,
    ``target_name``, ``fingerprint``, and ``files`` (+ ``size``, ``fit``, ``mode``) or ``x``
    (+ ``test``: the data's own test split, rows of ``x`` from ``test`` on)."""
    from .preprocess import fit_normalization, normalize

    o = request.options
    if request.fit_rows < 1 or request.sample_rows < 1:
        raise DataError(f"data.fit_rows: {request.fit_rows}, data.sample_rows: {request.sample_rows}; give at "
                        "least 1 of each (defaults 5000 and 2000)")
    labels = np.asarray(o["labels"], dtype=np.int64)
    shape = tuple(o["shape"])
    if "x" in o:  # an array with its own test rows at the end
        own = len(labels) - o["test"]
        codes = np.concatenate([split_codes(0, own, val, 0.0, split_seed), np.full(o["test"], 2, np.int8)])
        src: ExampleSource = ArrayExamples(o["x"], labels, codes, str(request.path), split_seed)
    else:
        codes = split_codes(0, len(labels), val, test, split_seed)
        src = ImageFiles(request.path, o["files"], labels, codes, shape, o["size"], o["fit"], o["mode"], split_seed)
    if not src.counts[:, 0].sum():
        raise DataError(f"{request.path}: no examples left to train on; lower data.val / data.test")
    pre = dict(o["preprocess"])
    state: dict[str, Any] = {"source": src, "pre": pre,
                             "cache": {} if len(labels) * int(np.prod(shape)) * 4 <= CACHE_BYTES else None}
    taken = 0
    if normalize_inputs:  # per-channel statistics of the first fit_rows training examples
        first = int(np.searchsorted(np.cumsum(src.counts[:, 0]), request.fit_rows)) + 1  # blocks holding them
        raw = dict(zip(range(first), _decode_unnormalized(src, range(min(first, len(src.rows))), request.workers)))
        taken = int(src.counts[:first, 0].sum())
        pre = fit_normalization(pre, np.concatenate([d[0][0] for d in raw.values() if 0 in d])[: request.fit_rows])
        state["pre"] = pre
        if state["cache"] is not None:  # the blocks decoded to fit are kept, normalised
            state["cache"].update({g: {c: (normalize(pre, x), y) for c, (x, y) in d.items()} for g, d in raw.items()})
    pre["stream"] = {"blocks": len(src.rows), "fitted_on_rows": min(taken, request.fit_rows),
                     "sample_rows": request.sample_rows, "workers": request.workers,
                     "cached": state["cache"] is not None}
    splits = {s: int(src.counts[:, i].sum()) for i, s in enumerate(SPLITS)}
    info = DataInfo(name=name, task="classification", modality="image", input_shape=shape,
                    num_classes=len(o["class_names"]), class_names=o["class_names"], target_name=o["target_name"],
                    preprocess=pre, splits=splits, stratified=False, fingerprint=o["fingerprint"],
                    source=o.get("source", str(request.path)))
    return _dataset(info, state, request.sample_rows, request.workers)
