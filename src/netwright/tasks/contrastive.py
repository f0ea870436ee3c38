"""Contrastive self-supervised training (SimCLR): two random views of each image in a batch,
the NT-Xent loss pulls a view's embedding to its partner's and away from the 2B-2 others."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.info import DataInfo
from .base import OneNetworkTask
from .registry import register_task

if TYPE_CHECKING:
    from ..run import Run


def views(x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    """A random view of each image: crop-and-resize (scale 0.6-1), rotation (+-11 degrees),
    horizontal flip, shift (+-10%), brightness and contrast jitter; one affine warp per image."""
    n = len(x)

    def u(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, generator=g) * (hi - lo) + lo

    s, a, tx, ty = u(0.6, 1.0), u(-0.2, 0.2), u(-0.2, 0.2), u(-0.2, 0.2)
    flip = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    theta = torch.stack([torch.stack([s * torch.cos(a) * flip, -s * torch.sin(a), tx], 1),
                         torch.stack([s * torch.sin(a) * flip, s * torch.cos(a), ty], 1)], 1).to(x)
    out = F.grid_sample(x, F.affine_grid(theta, list(x.shape), align_corners=False), padding_mode="border",
                        align_corners=False)
    contrast, bright = u(0.6, 1.4).to(x).view(-1, 1, 1, 1), u(-0.4, 0.4).to(x).view(-1, 1, 1, 1)
    return out * contrast + bright


def nt_xent(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent over 2B unit embeddings (views i and i+B are partners), per anchor: (2B,)."""
    n = len(z) // 2
    sim = (z @ z.T) / temperature
    sim = sim.masked_fill(torch.eye(len(z), dtype=torch.bool, device=z.device), float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, partner, reduction="none")


@register_task("contrastive", title="a self-supervised encoder", plural="self-supervised encoders")
class ContrastiveTask(OneNetworkTask):
    """SimCLR pre-training through the shared trainer (the labels of the data are not used).
    Training views come from the global generator, which the trainer seeds for every epoch from
    the run's seed; validation views are the same at every evaluation."""

    metric_names = ["loss"]
    instead = "train a classifier on it (train.init_from: {run}, train.freeze: [features])"

    def __init__(self, info: DataInfo, train: Any = None, temperature: float = 0.2, **context: Any):
        super().__init__(info, train, **context)
        self.temperature = temperature

    def loss(self, model: nn.Module, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        return nt_xent(model(torch.cat([views(x, g), views(x, g)])), self.temperature)

    def objective(self, model: nn.Module, batch: tuple[Any, ...]) -> torch.Tensor:
        return self.loss(model, batch[0], None).mean()

    @torch.no_grad()
    def eval_step(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(len(batch[0]))  # the same views at every evaluation
        return {"loss": self.loss(model, batch[0], g)}

    def metrics(self, outputs: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {"loss": float(outputs["loss"].mean())}

    def evaluate(self, run: Run, split: str = "test", batch_size: int = 1024,
                 coverage: float | None = None) -> dict[str, Any]:
        """Its loss, and how a k-NN vote reads its features."""
        return {"split": split, "n": run.info.splits[split], "task": "self-supervised",
                **evaluate_contrastive(run.load_model(), run.load_data(), split)}

    @classmethod
    def example(cls) -> dict[str, Any]:
        return {"data": {"name": "digits"}, "model": {"name": "contrastive", "channels": [4, 8], "projection": [16, 8]},
                "train": {"epochs": 1}}


@torch.no_grad()
def evaluate_contrastive(model: nn.Module, data: Any, split: str, k: int = 20, reference: int = 10_000) -> dict[str, Any]:
    """NT-Xent on the split, and the accuracy of a k-nearest-neighbour vote (cosine, on the
    representation a probe reads) with up to ``reference`` labelled training images as the
    neighbours: how well the classes separate before any probe is trained."""
    model.eval()
    task = ContrastiveTask(data.info)
    part = data.split(split)

    def embed(x: torch.Tensor) -> torch.Tensor:
        return F.normalize(torch.cat([model.embed(x[i:i + 1024]) for i in range(0, len(x), 1024)]), dim=1)

    losses = torch.cat([task.eval_step(model, (part.x[i:i + 512], None))["loss"] for i in range(0, len(part), 512)])
    ref_x, ref_y = data.train.x[:reference], data.train.y[:reference]
    bank, query = embed(ref_x), embed(part.x)
    votes = torch.zeros(len(query), data.info.num_classes)
    for i in range(0, len(query), 1024):
        sim, idx = (query[i:i + 1024] @ bank.T).topk(k, dim=1)
        votes[i:i + 1024].scatter_add_(1, ref_y[idx], torch.ones_like(sim))
    knn = float((votes.argmax(1) == part.y).double().mean())
    return {"metrics": {"loss": float(losses.mean()), "knn_accuracy": knn},
            "knn": {"k": k, "reference_images": len(ref_y), "reference_split": "train"}}
