"""Datasets: built-in real data and loaders for a user's own files."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import arrays, builtin, control, fashion, graphs, images, ratings, scenes, segments, speech, synthetic, tabular, text  # noqa: F401  (registers the loaders)
from .info import Dataset, DataInfo, RawData, Split
from .registry import DATASETS, register_dataset

if TYPE_CHECKING:
    from ..spec import DataSpec


def load_dataset(spec: "DataSpec") -> Dataset:
    """Load, check, split and normalise the dataset a ``data:`` section names."""
    from .prepare import prepare  # torch: imported when data is loaded, not when loaders are listed

    entry = DATASETS.get(spec.name, path="data.name")
    raw = entry.fn(**spec.params)
    return prepare(raw, spec.name, spec.val, spec.test, spec.split_seed, spec.normalize,
                   folds=(spec.folds, spec.fold) if spec.folds else None)


__all__ = ["DATASETS", "Dataset", "DataInfo", "RawData", "Split", "load_dataset", "register_dataset"]
