"""The dataset registry: name -> loader function returning :class:`RawData`."""

from __future__ import annotations

from ..registry import Registry

DATASETS = Registry("dataset")
register_dataset = DATASETS.register
