"""A ``torch.utils.data.Dataset`` handed to ``netwright.train(data=...)``.

Its (input, target) pairs are read once into arrays and saved without pickle as an ``.npz`` in
the runs folder (``runs/.datasets/<sha256>.npz``, named by content); the run's spec then says
``data: {name: npz, path: ...}``, so every verb in any process reads the same examples and the
``npz`` loader infers the rest: integer targets are classes, float targets regression;
(F,) inputs are a table, (C, L) a sequence, (C, H, W) an image. A ``classes`` attribute (the
torchvision convention) names the classes.

A pandas or polars DataFrame is a table: saved as Parquet the same way
(``runs/.datasets/<sha256>.parquet``) and read by the ``parquet`` loader with the spec's ``data:``
keys (``target`` and any other), so its columns are read as a CSV's would be.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_bytes
from ..errors import DataError

MAX_BYTES = 4 << 30  # a data set this large belongs in a file a loader streams, not in memory


def _array(value: Any, what: str, i: int) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    a = np.asarray(value)
    if not np.issubdtype(a.dtype, np.number) and a.dtype != bool:
        raise DataError(f"netwright.train(data=...): item {i}'s {what} is {type(value).__name__} ({a.dtype}); "
                        "give numbers or tensors")
    return a


def materialize(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """Every (input, target) pair of a map-style or iterable dataset, stacked."""
    if hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__"):
        items: Any = (dataset[i] for i in range(len(dataset)))
    elif hasattr(dataset, "__iter__"):
        items = iter(dataset)
    else:
        raise DataError(f"netwright.train(data=...): a {type(dataset).__name__} is not a torch Dataset; give a "
                        "map-style (__len__, __getitem__) or iterable dataset of (input, target) pairs")
    xs, ys, size = [], [], 0
    for i, item in enumerate(items):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            kind = f"a dict with keys {sorted(item)}" if isinstance(item, dict) else type(item).__name__
            raise DataError(f"netwright.train(data=...): item {i} is {kind}; each item must be an (input, target) pair")
        x, y = _array(item[0], "input", i), _array(item[1], "target", i)
        if xs and x.shape != xs[0].shape:
            raise DataError(f"netwright.train(data=...): item {i}'s input has shape {tuple(x.shape)}, item 0's "
                            f"{tuple(xs[0].shape)}; every input needs the same shape")
        if y.size != 1:
            raise DataError(f"netwright.train(data=...): item {i}'s target has shape {tuple(y.shape)}; give one "
                            "class index or one number per example")
        size += x.nbytes
        if size > MAX_BYTES:
            raise DataError(f"netwright.train(data=...): more than {MAX_BYTES >> 30} GiB of inputs; save them as a "
                            "file and use a loader (data: {name: npz, path: ...})")
        xs.append(x)
        ys.append(y.reshape(()))
    if not xs:
        raise DataError("netwright.train(data=...): the dataset is empty")
    x, y = np.stack(xs), np.stack(ys)
    if y.dtype == bool:
        y = y.astype(np.int64)
    return x, y


def save_dataset(dataset: Any, runs_dir: str | os.PathLike) -> dict[str, Any]:
    """Save ``dataset`` into ``runs_dir/.datasets/`` and return the ``data:`` keys that load it."""
    x, y = materialize(dataset)
    buffer = io.BytesIO()
    np.savez(buffer, x=x, y=y)
    blob = buffer.getvalue()
    path = Path(runs_dir) / ".datasets" / f"{hashlib.sha256(blob).hexdigest()[:32]}.npz"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(path, blob)
    keys: dict[str, Any] = {"name": "npz", "path": str(path.resolve())}
    classes = getattr(dataset, "classes", None)
    if classes is not None and np.issubdtype(y.dtype, np.integer):
        keys["class_names"] = [str(c) for c in classes]
    return keys


def is_frame(data: Any) -> bool:
    """A pandas or polars DataFrame (duck-typed: neither is imported for the check)."""
    kind = type(data).__module__.split(".")[0]
    return kind in ("pandas", "polars") and type(data).__name__ == "DataFrame"


def save_frame(frame: Any, runs_dir: str | os.PathLike, keys: dict[str, Any]) -> dict[str, Any]:
    """Save a DataFrame as Parquet into ``runs_dir/.datasets/`` and return the ``data:`` keys that
    load it: the spec's own ``keys`` (its ``target`` at least) on the ``parquet`` loader."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not keys.get("target"):
        columns = ", ".join(map(str, list(frame.columns)[:12]))
        raise DataError(f"netwright.train(data=DataFrame): name the column to predict, e.g. "
                        f"{{'data': {{'target': '{list(frame.columns)[-1]}'}}}}; the columns are {columns}")
    if keys.get("name") not in (None, "parquet") or keys.get("path"):
        raise DataError("netwright.train(data=DataFrame): the spec's data section gives the DataFrame's options "
                        f"(target, features, ...), not another data set (name: {keys.get('name')}, "
                        f"path: {keys.get('path')}); leave those out")
    try:
        table = frame.to_arrow() if hasattr(frame, "to_arrow") else pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError) as e:
        raise DataError(f"netwright.train(data=DataFrame): a column Parquet cannot hold ({str(e).splitlines()[0]}); "
                        "give each column numbers, text or dates") from None
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer)
    blob = buffer.getvalue().to_pybytes()
    path = Path(runs_dir) / ".datasets" / f"{hashlib.sha256(blob).hexdigest()[:32]}.parquet"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(path, blob)
    return {**{k: v for k, v in keys.items() if k != "name"}, "name": "parquet", "path": str(path.resolve())}
