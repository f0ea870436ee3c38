"""Node classification: a class per node of a graph, scored beside a logistic regression on each
node's connections."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.graphs import adjacency
from .classification import ClassificationTask
from .registry import register_task

if TYPE_CHECKING:
    from ..data.info import Dataset
    from ..run import Run


@register_task("node_classification", title="a node classifier", plural="node classifiers")
class NodeClassificationTask(ClassificationTask):
    """Every example is a node (a one-hot row); the graph travels in the data's preprocessing."""

    stages = ClassificationTask.stages - {"audit", "mitigate", "continual"}

    def baseline(self, run: Run, data: Dataset, split: str) -> dict[str, Any]:
        return adjacency_baseline(data, split)

    @classmethod
    def example(cls) -> dict[str, Any]:
        return {"data": {"name": "karate_club", "val": 0}, "model": {"name": "gcn", "hidden": [8]}, "train": {"epochs": 1}}


def adjacency_baseline(data, split: str = "test") -> dict:
    """Logistic regression (scikit-learn) on each node's connection profile (its row and column
    of the adjacency matrix: edges out and in): a graph-aware baseline fitted on the same
    training nodes."""
    from sklearn.linear_model import LogisticRegression

    a = adjacency(data.info.preprocess, symmetric=False)
    profile = np.concatenate([a, a.T], axis=1)

    def rows(part) -> tuple[np.ndarray, np.ndarray]:
        return profile[part.x.numpy().argmax(1)], part.y.numpy()

    fitted = LogisticRegression(max_iter=5000).fit(*rows(data.train))
    return {"model": "logistic regression on each node's edges out and in (scikit-learn)", "fitted_on": "train",
            "accuracy": float(fitted.score(*rows(data.split(split))))}
