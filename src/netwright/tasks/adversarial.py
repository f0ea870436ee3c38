"""Adversarial training (GAN): alternating discriminator and generator steps, each network
with its own optimizer; quality judged by a classifier trained on the same data.

Quality, every epoch and at the end: the Frechet distance between real and generated samples
in the feature space of the judge classifier (its last hidden layer: an FID for this data
set), and the judge's class histogram of the generated samples (mode coverage).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.info import DataInfo
from ..errors import NetwrightError
from ..metrics import frechet_distance
from .base import Kind
from .registry import register_task

if TYPE_CHECKING:
    from ..run import Run

MODE_SHARE = 0.03  # a class counts as covered when at least 3% of the samples are judged to be it
EVAL_SAMPLES = 1000


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


def load_judge(run: Run):
    """The classifier trained beside the GAN that scores its samples (``judge/``)."""
    from ..run import Run

    if not run.has("judge/model.safetensors"):
        raise NetwrightError(f"{run.path}: the judge classifier is missing (judge/); retrain the GAN")
    return Judge(Run.open(run.file("judge")).load_model())


def quality(real_features: np.ndarray, fake: torch.Tensor, judge: Judge, num_classes: int) -> dict[str, float]:
    """Frechet distance to the real features, and the judged class histogram of ``fake``."""
    feats, classes = judge(fake)
    share = np.bincount(classes, minlength=num_classes) / len(classes)
    return {"fid": frechet_distance(real_features, feats), "modes": int((share >= MODE_SHARE).sum()),
            "min_class_share": float(share.min())}


@register_task("adversarial", title="a GAN", plural="GANs")
class AdversarialTask(Kind):
    """Non-saturating GAN loss with one-sided label smoothing and decaying instance noise."""

    default_monitor = "val_fid"
    metric_names = ["fid", "modes", "min_class_share"]
    stages = frozenset({"evaluate", "sample", "export", "report"})
    instead = "use 'netwright sample {run}' or 'netwright evaluate {run}'"

    distributed = False

    def __init__(self, info: DataInfo, train: Any = None, **context: Any):
        super().__init__(info, train, **context)
        judge = context.get("companions", {}).get("judge")
        self.spec, self.judge = train.adversarial if train is not None else None, judge and Judge(judge.load_model())
        self.noise = self.spec.instance_noise if self.spec is not None else 0.0
        self.model: nn.Module | None = None

    @classmethod
    def companions(cls, spec: Any, info: DataInfo) -> dict[str, dict[str, Any]]:
        """The classifier that judges the samples, trained on the same data and split first."""
        return {"judge": judge_spec(spec, info.modality)}

    @staticmethod
    def cost_module(model: nn.Module) -> nn.Module:
        return model.discriminator

    def training_flops(self, model: nn.Module, example: torch.Tensor) -> None:
        return None  # a step trains two networks: not one forward

    def forward_flops(self, model: nn.Module) -> int:
        """A generator's forward is a sample."""
        from torch.utils.flop_counter import FlopCounterMode

        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.sample(1)
        return int(counter.get_total_flops())

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

    def evaluate(self, run: Run, split: str = "test", batch_size: int = 1024,
                 coverage: float | None = None) -> dict[str, Any]:
        """Frechet distance to the test split for the GAN, an untrained generator and Gaussian noise;
        the judged class histogram; for a conditional GAN, how often class k is judged as k."""
        from ..models import build_model

        data = run.load_data()
        test = data.split("test")
        info = data.info
        judge = load_judge(run)
        real, _ = judge(test.x)
        model = run.load_model()
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            fake = model.sample(EVAL_SAMPLES, generator=g)
            torch.manual_seed(run.spec.seed)
            untrained = build_model(run.spec.model.name, info, **run.spec.model.params).eval().sample(
                EVAL_SAMPLES, generator=torch.Generator().manual_seed(0))
        noise = torch.randn((EVAL_SAMPLES, *info.input_shape), generator=torch.Generator().manual_seed(0))
        feats, classes = judge(fake)
        share = np.bincount(classes, minlength=info.num_classes) / EVAL_SAMPLES
        metrics = {"fid": frechet_distance(real, feats),
                   "fid_untrained_generator": frechet_distance(real, judge(untrained)[0]),
                   "fid_gaussian_noise": frechet_distance(real, judge(noise)[0]),
                   "fid_real_train_vs_test": frechet_distance(real, judge(data.train.x)[0]),
                   "modes": int((share >= MODE_SHARE).sum()), "min_class_share": float(share.min())}
        result: dict[str, Any] = {"split": "test", "n": len(test), "task": "adversarial", "samples": EVAL_SAMPLES,
                                  "metrics": metrics, "class_share": dict(zip(info.class_names, share.tolist())),
                                  "mode_share_threshold": MODE_SHARE}
        if model.conditional:
            per = EVAL_SAMPLES // info.num_classes
            labels = torch.arange(info.num_classes).repeat_interleave(per)
            with torch.no_grad():
                judged = judge(model.sample(len(labels), labels=labels, generator=torch.Generator().manual_seed(1)))[1]
            hits = judged == labels.numpy()
            metrics["conditional_accuracy"] = float(hits.mean())
            result["conditional_accuracy_per_class"] = {
                name: float(hits[labels.numpy() == k].mean()) for k, name in enumerate(info.class_names)}
        return result

    def plots(self, run: Run, result: dict[str, Any], folder: Path) -> None:
        if self.info.modality == "image":
            from .samples import write_samples

            write_samples(run, n=64, out=folder / "samples.png")

    def export(self, run: Run, target: Path, samples: int = 512) -> dict[str, Any]:
        """The generator (inputs ``noise`` and, when conditional, ``label``), checked on random noise."""
        from ..deploy.verify import export_generator_verified

        return export_generator_verified(run, target, samples)

    def sample(self, run: Run, n: int = 64, label: int | None = None, out: str | Path | None = None,
               seed: int = 0) -> Path:
        """Generate ``n`` samples: a picture grid for images, a CSV in the data's columns for tables."""
        from .samples import write_samples

        return write_samples(run, n, label, out, seed)

    @classmethod
    def example(cls) -> dict[str, Any]:
        return {"data": {"name": "digits"}, "model": {"name": "gan", "latent_dim": 8, "g_channels": 8, "d_channels": 8,
                                                     "hidden": [16]},
                "train": {"epochs": 1}}


def judge_spec(spec: Any, modality: str) -> dict[str, Any]:
    """The classifier that judges a GAN's samples: the default CNN (images) or MLP (tabular),
    trained on the same data and split."""
    model = {"name": "cnn"} if modality == "image" else {"name": "mlp"}
    return {"seed": spec.seed, "data": spec.data.model_dump(), "model": model,
            "train": {"epochs": spec.train.adversarial.judge_epochs, "threads": spec.train.threads,
                      "optimizer": {"name": "adamw", "lr": 0.003}, "schedule": {"name": "onecycle"}}}
