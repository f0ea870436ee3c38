"""Graphs for node classification: each example is one node of a fixed graph.

A node is given to the model as a one-hot row over the graph's nodes (a categorical column
``node``, so ``predict`` takes node names from a CSV); the graph itself (its edges) travels in
the data's ``preprocess`` and the ``gcn`` family reads it from there. Training is transductive:
the whole graph is known, only the training nodes' labels are used.
"""

from __future__ import annotations

import csv
import io
from importlib import metadata
from pathlib import Path

import numpy as np

from ..errors import DataError
from .info import RawData
from .registry import register_dataset


def node_data(names: list[str], edges: list[tuple[int, int, float]], labels: list[str], class_names: list[str],
              source: str, directed: bool, train_nodes: list[int] | None = None) -> RawData:
    """RawData whose rows are the nodes (one-hot), with the graph in ``preprocess["graph"]``.
    ``train_nodes``: only these nodes carry training labels; all others form the test split."""
    n = len(names)
    x = np.eye(n, dtype=np.float32)
    index = {c: i for i, c in enumerate(class_names)}
    y = np.array([index[v] for v in labels], dtype=np.int64)
    pre = {"kind": "table", "columns": [{"name": "node", "kind": "categorical", "categories": names}],
           "graph": {"nodes": n, "directed": directed, "edges": [[int(i), int(j), float(w)] for i, j, w in edges]}}
    test = None
    if train_nodes is not None:
        rest = np.setdiff1d(np.arange(n), train_nodes)
        test = (x[rest], y[rest], {})
        x, y = x[train_nodes], y[train_nodes]
    return RawData(x=x, y=y, task="classification", modality="tabular", preprocess=pre, class_names=class_names,
                   feature_names=[f"node={v}" for v in names], target_name="class", test=test, source=source,
                   kind="node_classification")


def adjacency(pre: dict, symmetric: bool = True) -> np.ndarray:
    """The weighted adjacency matrix (N, N) of a node dataset's graph: entry (i, j) weighs the edge
    i -> j; ``symmetric``: A + A^T for a directed graph (edges either way)."""
    g = pre.get("graph")
    if g is None:
        raise DataError("this data has no graph; the gcn family needs node data (karate_club, drosophila, "
                        "graph_csv)")
    a = np.zeros((g["nodes"], g["nodes"]), dtype=np.float32)
    for i, j, w in g["edges"]:
        a[i, j] += w
    if not g["directed"]:
        return np.maximum(a, a.T)
    return a + a.T if symmetric else a


@register_dataset("karate_club", modality="tabular", task="classification")
def karate_club(labelled: list[int] = [0, 33]) -> RawData:
    """Zachary's karate club (34 members, 78 friendships; networkx): which of the two clubs each
    member joined after the split. Only the ``labelled`` members' clubs are known in training
    (default: the two leaders); every other member is the test split.

    Args:
        labelled: members (0..33) whose club is known in training.
    """
    import networkx as nx

    g = nx.karate_club_graph()
    bad = [v for v in labelled if not 0 <= v < g.number_of_nodes()]
    if bad or len(set(labelled)) < 2:
        raise DataError(f"data.labelled: give at least two distinct members among 0..{g.number_of_nodes() - 1}"
                        + (f"; {bad} are not members" if bad else ""))
    clubs = [g.nodes[v]["club"] for v in g.nodes]
    return node_data([str(v) for v in g.nodes], [(i, j, 1.0) for i, j in g.edges], clubs, ["Mr. Hi", "Officer"],
                     "Zachary 1977, 'An information flow model for conflict and fission in small groups', via "
                     "networkx.karate_club_graph()", directed=False, train_nodes=sorted(labelled))


def _graspologic_file(name: str) -> bytes:
    try:
        dist = metadata.distribution("graspologic")
    except metadata.PackageNotFoundError:
        raise DataError("the Drosophila connectome ships in the graspologic wheel: pip install --no-deps graspologic "
                        "(only its data files are read)") from None
    path = Path(dist.locate_file(f"graspologic/datasets/drosophila/{name}"))
    if not path.is_file():
        raise DataError(f"{path} is missing; reinstall graspologic (pip install --no-deps --force-reinstall graspologic)")
    return path.read_bytes()


@register_dataset("drosophila", modality="tabular", task="classification")
def drosophila(side: str = "left", weights: str = "log") -> RawData:
    """The Drosophila larva mushroom body connectome (Eichler et al. 2017), one hemisphere, as the
    graspologic wheel ships it: neurons as nodes, synapse counts as directed edge weights, and the
    cell type (K Kenyon cell, P projection neuron, O output neuron, I input neuron) to classify.

    Args:
        side: left (209 neurons) or right hemisphere.
        weights: log (log(1 + synapses)), count or binary edge weights.
    """
    if side not in ("left", "right") or weights not in ("log", "count", "binary"):
        raise DataError("data.side: left or right; data.weights: log, count or binary")
    rows = [r for r in csv.reader(io.StringIO(_graspologic_file(f"{side}_adjacency.csv").decode()), delimiter=" ")]
    a = np.array([[float(v) for v in r if v] for r in rows if r], dtype=np.float64)
    labels = [v.strip() for v in _graspologic_file(f"{side}_cell_labels.csv").decode().split() if v.strip()]
    if a.shape != (len(labels), len(labels)):
        raise DataError(f"graspologic drosophila {side}: adjacency {a.shape} does not match {len(labels)} labels")
    w = {"log": np.log1p(a), "count": a, "binary": (a > 0).astype(np.float64)}[weights]
    edges = [(int(i), int(j), float(w[i, j])) for i, j in zip(*np.nonzero(a))]
    names = {"K": "Kenyon cell", "P": "projection neuron", "O": "output neuron", "I": "input neuron"}
    return node_data([f"{side[0]}{i}" for i in range(len(labels))], edges, [names[v] for v in labels],
                     list(names.values()), f"Eichler et al. 2017 larval mushroom body ({side}), graspologic wheel "
                     "(graspologic/datasets/drosophila)", directed=True)
