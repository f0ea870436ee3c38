"""Recommendation: a rating model (regression on user and item ids) scored beside a
matrix-factorisation baseline fitted on the same training ratings, and by hit rate at 10 (each
test interaction's item ranked among 99 items its user never rated)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from torch import nn

from ..data.info import Dataset
from ..models.ncf import id_columns
from .registry import register_task
from .regression import RegressionTask

if TYPE_CHECKING:
    from ..run import Run


@register_task("recommendation", title="a recommender", plural="recommenders")
class RecommendationTask(RegressionTask):
    """A rating per (user, item) pair; ``evaluate`` adds HR@10 and the matrix-factorisation baseline."""


    def evaluate(self, run: Run, split: str, batch_size: int = 1024, coverage: float | None = None) -> dict[str, Any]:
        result = super().evaluate(run, split, batch_size, coverage)
        report = recommendation_report(run.load_model(), run.load_data(), split)
        result["metrics"]["hr_at_10"] = report.pop("hr_at_10")
        return {**result, "baseline": report.pop("baseline"), "trivial_baseline": result["baseline"], **report}

    @classmethod
    def example(cls) -> dict[str, Any]:
        return {"data": {"name": "movielens_100k"}, "model": {"name": "ncf", "factors": 4, "embed_dim": 4, "hidden": [8]},
                "train": {"epochs": 1}}


class BiasedMF(nn.Module):
    """r(u, i) = mu + b_u + b_i + p_u . q_i (Koren 2009; the 'SVD' of the Netflix prize)."""

    def __init__(self, users: int, items: int, factors: int):
        super().__init__()
        self.p, self.q = nn.Embedding(users, factors), nn.Embedding(items, factors)
        self.bu, self.bi = nn.Embedding(users, 1), nn.Embedding(items, 1)
        nn.init.normal_(self.p.weight, std=0.1)
        nn.init.normal_(self.q.weight, std=0.1)
        nn.init.zeros_(self.bu.weight)
        nn.init.zeros_(self.bi.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, i = x[:, 0].long(), x[:, 1].long()
        return (self.p(u) * self.q(i)).sum(1) + self.bu(u)[:, 0] + self.bi(i)[:, 0]


def fit_matrix_factorisation(data: Dataset, factors: int = 50, reg: float = 0.05, epochs: int = 60,
                             seed: int = 0) -> BiasedMF:
    """Biased MF on the (standardised) training ratings: mini-batch Adam with L2 on the rows a
    batch touches; keeps the epoch with the lowest validation error."""
    torch.manual_seed(seed)
    mf = BiasedMF(*id_columns(data.info), factors)
    opt = torch.optim.Adam(mf.parameters(), lr=0.005)
    x, y = data.train.x, data.train.y
    check = data.val or data.train
    best, best_state = float("inf"), None
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for b in torch.randperm(len(y), generator=g).split(1024):
            u, i = x[b, 0].long(), x[b, 1].long()
            err = mf(x[b]) - y[b]
            penalty = (mf.p(u) ** 2).sum(1) + (mf.q(i) ** 2).sum(1) + mf.bu(u)[:, 0] ** 2 + mf.bi(i)[:, 0] ** 2
            loss = (err ** 2 + reg * penalty).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            e = float(((mf(check.x) - check.y) ** 2).mean())
        if e < best:
            best, best_state = e, {k: v.clone() for k, v in mf.state_dict().items()}
    mf.load_state_dict(best_state)
    return mf.eval()


def ranking_candidates(data: Dataset, split: str, negatives: int = 99, seed: int = 0) -> torch.Tensor:
    """For each of the split's (user, item) interactions, that item and ``negatives`` items the
    user rated nowhere in the data (sampled once, seeded): (n, negatives + 1, 2) id pairs, the
    true item first."""
    users, items = id_columns(data.info)
    rated = np.zeros((users, items), dtype=bool)
    for part in filter(None, (data.train, data.val, data.test)):
        ids = part.x.numpy().astype(np.int64)
        rated[ids[:, 0], ids[:, 1]] = True
    pairs = data.split(split).x.numpy().astype(np.int64)
    rng = np.random.default_rng(seed)
    candidates = np.empty((len(pairs), negatives + 1), dtype=np.int64)
    for row, (u, i) in enumerate(pairs):
        pool = np.flatnonzero(~rated[u])
        candidates[row, 0] = i
        candidates[row, 1:] = rng.choice(pool, size=negatives, replace=len(pool) < negatives)
    users_col = np.broadcast_to(pairs[:, :1], candidates.shape)
    return torch.from_numpy(np.stack([users_col, candidates], -1).astype(np.float32))


def hit_rate(score: Callable[[torch.Tensor], torch.Tensor], candidates: torch.Tensor, k: int = 10) -> float:
    """Share of the interactions whose true item the scores rank in the top ``k`` of its
    candidates (``ranking_candidates``)."""
    x = candidates.reshape(-1, 2)
    with torch.no_grad():
        s = torch.cat([score(chunk).reshape(-1) for chunk in x.split(65536)]).reshape(candidates.shape[:2])
    rank = (s[:, 1:] > s[:, :1]).sum(1)  # items scored above the true one
    return float((rank < k).double().mean())


def recommendation_report(model: nn.Module, data: Dataset, split: str) -> dict[str, Any]:
    """RMSE of a matrix-factorisation baseline fitted in this call, and HR@10 of both."""
    mf = fit_matrix_factorisation(data)
    part = data.split(split)
    std = data.info.preprocess["target"]["std"]
    with torch.no_grad():
        rmse = float(((mf(part.x) - part.y) ** 2).mean().sqrt()) * std
    model = model.eval()
    candidates = ranking_candidates(data, split)
    return {
        "baseline": {"model": "biased matrix factorisation (50 factors, L2 0.05)",
                     "fitted_on": "train", "rmse": rmse, "hr_at_10": hit_rate(mf, candidates)},
        "hr_at_10": hit_rate(lambda x: model(x)[:, 0], candidates),
        "hr_definition": "each test rating's item ranked among 99 items its user rated nowhere; random = 0.10",
    }
