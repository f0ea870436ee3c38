"""Datasets: built-in real data and loaders for a user's own files."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import arrays, builtin, control, fashion, graphs, images, ratings, scenes, segments, speech, synthetic, tabular, text  # noqa: F401  (registers the loaders)
from ..errors import DataError
from .info import Dataset, DataInfo, RawData, Split, StreamRequest
from .registry import DATASETS, register_dataset

if TYPE_CHECKING:
    from ..spec import DataSpec


def load_dataset(spec: "DataSpec") -> Dataset:
    """Load, check, split and normalise the dataset a ``data:`` section names."""
    from .prepare import prepare  # torch: imported when data is loaded, not when loaders are listed

    entry = DATASETS.get(spec.name, path="data.name")
    raw = entry.fn(**spec.params)
    if isinstance(raw, StreamRequest):  # data bigger than memory: read a block at a time
        if spec.folds:
            raise DataError("data.folds: streamed data is not cross-validated; set data.stream: false on data "
                            "that fits in memory")
        from .stream import streamed_dataset, streamed_examples

        if raw.target is None:  # labelled examples: image files, an array
            return streamed_examples(raw, spec.name, spec.val, spec.test, spec.split_seed, spec.normalize)
        return streamed_dataset(raw.path, spec.name, raw.target, raw.options, spec.val, spec.test, spec.split_seed,
                                spec.normalize, raw.fit_rows, raw.sample_rows, raw.workers)
    return prepare(raw, spec.name, spec.val, spec.test, spec.split_seed, spec.normalize,
                   folds=(spec.folds, spec.fold) if spec.folds else None)


__all__ = ["DATASETS", "Dataset", "DataInfo", "RawData", "Split", "load_dataset", "register_dataset"]
