"""Graph convolutional network (Kipf & Welling 2017) over the fixed graph of a node dataset."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ..data.graphs import adjacency
from ..data.info import DataInfo
from ..errors import NetwrightError
from .common import Activation, Dropout, PosInt, make_activation
from .registry import register_model


def neighbour_operators(info: DataInfo, aggregate: str) -> torch.Tensor:
    """(P, N, N) propagation matrices of one layer.

    gcn: Â = D^-1/2 (A + I) D^-1/2 on the undirected graph (Kipf & Welling 2017).
    sage: the node itself, the mean over the nodes its edges go to and the mean over the nodes
    whose edges come in (Hamilton et al. 2017, mean aggregator, kept apart by direction), so a
    node need not resemble its neighbours (as in a circuit, where cell types connect to others).
    """
    if aggregate == "gcn":
        a = torch.from_numpy(adjacency(info.preprocess)) + torch.eye(info.input_shape[0])
        d = a.sum(1).rsqrt()
        return (d[:, None] * a * d[None, :])[None]
    a = torch.from_numpy(adjacency(info.preprocess, symmetric=False))
    mean = lambda m: m / m.sum(1, keepdim=True).clamp(min=1e-12)  # noqa: E731  (no edges: zeros)
    ops = [torch.eye(a.shape[0]), mean(a)]
    if info.preprocess["graph"]["directed"]:
        ops.append(mean(a.T))
    return torch.stack(ops)


class GCN(nn.Module):
    """Graph convolutions H' = act([P_1 H, ..., P_k H] W) with the propagation matrices P of
    ``aggregate`` (see ``neighbour_operators``). The first H is each node's one-hot identity:
    the network learns from where each node sits in the graph. The input rows pick nodes
    (one-hot over the graph's nodes); the output is their rows of the last layer."""

    def __init__(self, info: DataInfo, hidden: list[int], activation: str, dropout: float, aggregate: str):
        super().__init__()
        if "graph" not in info.preprocess:
            raise NetwrightError(f"model gcn needs node data with a graph (karate_club, drosophila); "
                                 f"'{info.name}' has none")
        n = info.preprocess["graph"]["nodes"]
        if info.input_shape != (n,):
            raise NetwrightError(f"model gcn: inputs of shape {info.input_shape} do not pick one of the {n} nodes")
        self.register_buffer("props", neighbour_operators(info, aggregate))  # (P, N, N)
        widths = [n, *hidden, info.num_outputs]
        self.layers = nn.ModuleList(nn.Linear(i * len(self.props), o) for i, o in zip(widths[:-1], widths[1:]))
        self.act = make_activation(activation)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()

    def propagate(self, h: torch.Tensor) -> torch.Tensor:
        """(N, F) -> (N, P*F): each node's neighbourhood mean(s)."""
        return torch.cat(list(self.props @ h), dim=-1)

    def node_outputs(self) -> torch.Tensor:
        """(N, K): the last layer's output for every node of the graph."""
        h = self.layers[0](torch.cat(list(self.props), dim=-1))  # Â I W: identity features
        for layer in self.layers[1:]:
            h = layer(self.propagate(self.dropout(self.act(h))))
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.node_outputs()  # (B, N) one-hot rows -> (B, K)


@register_model("gcn", family="graph", data="graph")
def gcn(
    info: DataInfo,
    hidden: list[PosInt] = [16],
    activation: Activation = "relu",
    dropout: Dropout = 0.5,
    aggregate: Literal["gcn", "sage"] = "gcn",
) -> nn.Module:
    """Graph convolutional network for node classification over the data's graph (transductive).

    Args:
        hidden: widths of the graph convolution layers before the output layer.
        activation: non-linearity between graph convolutions.
        dropout: dropout between graph convolutions.
        aggregate: gcn (normalised sum over the undirected neighbourhood, the node included) or
            sage (the node, and the means over its edges out and in, each with its own weights).
    """
    return GCN(info, hidden, activation, dropout, aggregate)
