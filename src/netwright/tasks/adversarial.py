"""Adversarial training (GAN): alternating discriminator and generator steps, each network
with its own optimizer; quality judged by a classifier trained on the same data.

Quality, every epoch and at the end: the Frechet distance between real and generated samples
in the feature space of the judge classifier (its last hidden layer: an FID for this data
set), and the judge's class histogram of the generated samples (mode coverage).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.info import DataInfo
from ..metrics import frechet_distance
from ..spec import TrainSpec

MODE_SHARE = 0.03  # a class counts as covered when at least 3% of the samples are judged to be it


class Judge:
    """A trained classifier used to score samples: features (input of its output layer) and classes."""

    def __init__(self, model: nn.Module):
        self.model = model.eval()
        self.head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        feats, classes = [], []
        captured: list[torch.Tensor] = []
        hook = self.head.register_forward_pre_hook(lambda m, inp: captured.append(inp[0]))
        try:
            for i in range(0, len(x), batch_size):
                logits = self.model(x[i:i + batch_size].contiguous())
                feats.append(captured.pop().flatten(1))
                classes.append(logits.argmax(1))
        finally:
            hook.remove()
        return torch.cat(feats).double().numpy(), torch.cat(classes).numpy()


def quality(real_features: np.ndarray, fake: torch.Tensor, judge: Judge, num_classes: int) -> dict[str, float]:
    """Frechet distance to the real features, and the judged class histogram of ``fake``."""
    feats, classes = judge(fake)
    share = np.bincount(classes, minlength=num_classes) / len(classes)
    return {"fid": frechet_distance(real_features, feats), "modes": int((share >= MODE_SHARE).sum()),
            "min_class_share": float(share.min())}


class AdversarialTask:
    """Non-saturating GAN loss with one-sided label smoothing and decaying instance noise."""

    default_monitor = "val_fid"
    metric_names = ["fid", "modes", "min_class_share"]

    def __init__(self, info: DataInfo, train: TrainSpec, judge: Judge, autocast: Any = None):
        self.info, self.spec, self.judge = info, train.adversarial, judge
        self.noise = self.spec.instance_noise
        self.model: nn.Module | None = None

    def start_epoch(self, epoch: int, epochs: int) -> None:
        self.noise = self.spec.instance_noise * (1 - (epoch - 1) / max(epochs, 1))

    def optimizers(self, model: nn.Module) -> list[torch.optim.Optimizer]:
        from ..training.optim import build_optimizer  # training/ imports tasks/: import here, no cycle

        self.model = model
        return [build_optimizer(model.discriminator.parameters(), self.spec.discriminator),
                build_optimizer(model.generator.parameters(), self.spec.generator)]

    def _noisy(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.noise * torch.randn_like(x) if self.noise > 0 else x

    def train_step(self, model: nn.Module, batch: tuple[Any, ...],
                   optimizers: list[torch.optim.Optimizer]) -> dict[str, torch.Tensor]:
        x, y = batch[0], batch[1]
        opt_d, opt_g = optimizers
        labels = y if model.conditional else None
        for _ in range(self.spec.d_steps):
            d_loss = self.d_step(model, x, labels, opt_d)
        return {"d_loss": d_loss, "g_loss": self.g_step(model, len(x), labels, opt_g)}

    def d_step(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor | None,
               opt: torch.optim.Optimizer) -> torch.Tensor:
        """One discriminator update: real examples towards 1 - smoothing, generated ones towards 0."""
        n = len(x)
        with torch.no_grad():
            fake = model.generator(torch.randn(n, model.latent_dim, device=x.device), labels)
        opt.zero_grad(set_to_none=True)
        real_target = torch.full((n,), 1.0 - self.spec.label_smoothing, device=x.device)
        loss = (F.binary_cross_entropy_with_logits(model.discriminator(self._noisy(x), labels), real_target)
                + F.binary_cross_entropy_with_logits(model.discriminator(self._noisy(fake), labels),
                                                     torch.zeros(n, device=x.device)))
        loss.backward()
        opt.step()
        return loss.detach()

    def g_step(self, model: nn.Module, n: int, labels: torch.Tensor | None,
               opt: torch.optim.Optimizer) -> torch.Tensor:
        """One generator update (non-saturating loss); the discriminator's weights get no gradient."""
        device = next(model.parameters()).device
        model.discriminator.requires_grad_(False)
        try:
            opt.zero_grad(set_to_none=True)
            fake = model.generator(torch.randn(n, model.latent_dim, device=device), labels)
            loss = F.binary_cross_entropy_with_logits(model.discriminator(self._noisy(fake), labels),
                                                      torch.ones(n, device=device))
            loss.backward()
            opt.step()
        finally:
            model.discriminator.requires_grad_(True)
        return loss.detach()

    @torch.no_grad()
    def eval_step(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        feats, _ = self.judge(batch[0].cpu())
        return {"features": torch.from_numpy(feats), "labels": batch[1].cpu()}

    @torch.no_grad()
    def metrics(self, outputs: dict[str, torch.Tensor]) -> dict[str, Any]:
        model = self.model
        was = model.training
        model.eval()
        try:
            n = min(len(outputs["labels"]), self.spec.quality_samples)
            g = torch.Generator().manual_seed(0)  # the same noise every epoch: scores are comparable
            labels = outputs["labels"][:n] if model.conditional else None
            fake = model.sample(n, labels=labels, generator=g)
            return quality(outputs["features"].numpy(), fake.cpu(), self.judge, self.info.num_classes)
        finally:
            model.train(was)


def judge_spec(spec: Any, modality: str) -> dict[str, Any]:
    """The classifier that judges a GAN's samples: the default CNN (images) or MLP (tabular),
    trained on the same data and split."""
    model = {"name": "cnn"} if modality == "image" else {"name": "mlp"}
    return {"seed": spec.seed, "data": spec.data.model_dump(), "model": model,
            "train": {"epochs": spec.train.adversarial.judge_epochs, "threads": spec.train.threads,
                      "optimizer": {"name": "adamw", "lr": 0.003}, "schedule": {"name": "onecycle"}}}
