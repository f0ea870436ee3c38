"""Batch-level data augmentation by modality, vectorised (no per-sample Python work).

Images: random shift, small rotation, horizontal flip (one affine warp per batch),
gaussian noise. Sequences: random shift, step masking, noise. Tabular rows: noise
and mixup. Every random draw comes from the generator passed in, so an epoch's
augmentation is a function of (seed, epoch) and resumes exactly.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..spec import AugmentSpec


class Augmenter:
    """Apply the switched-on options of ``spec`` to training batches of one modality."""

    def __init__(self, spec: AugmentSpec, modality: str, num_classes: int | None):
        self.spec = spec
        self.modality = modality
        self.num_classes = num_classes
        self.enabled = bool(spec.active())
        self.gen = torch.Generator()
        self.rng = np.random.default_rng(0)

    def reseed(self, seed: int) -> None:
        """Start the random stream for one epoch."""
        self.gen.manual_seed(seed)
        self.rng = np.random.default_rng(seed)

    def _uniform(self, n: int, scale: float, like: torch.Tensor) -> torch.Tensor:
        return ((torch.rand(n, generator=self.gen) * 2 - 1) * scale).to(like.device, like.dtype)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.enabled:
            return x, y
        s = self.spec
        if self.modality == "image" and (s.shift or s.rotate or s.flip):
            x = self._warp(x)
        if self.modality == "sequence" and s.shift:
            x = self._shift_sequence(x)
        if self.modality == "sequence" and s.mask:
            keep = (torch.rand(x.shape[0], 1, x.shape[-1], generator=self.gen) >= s.mask).to(x.device, x.dtype)
            x = x * keep
        if s.noise and self.modality != "tokens":
            x = x + s.noise * torch.randn(x.shape, generator=self.gen).to(x.device, x.dtype)
        if s.mixup and self.modality == "tabular":
            x, y = self._mixup(x, y)
        return x, y

    def _warp(self, x: torch.Tensor) -> torch.Tensor:
        """One affine warp per batch: rotation, flip, then integer-pixel-scale shift."""
        n, _, h, w = x.shape
        s = self.spec
        angle = self._uniform(n, math.radians(s.rotate), x) if s.rotate else torch.zeros(n, dtype=x.dtype, device=x.device)
        flip = torch.ones(n, dtype=x.dtype, device=x.device)
        if s.flip:
            flip = torch.where(torch.rand(n, generator=self.gen).to(x.device) < 0.5, -flip, flip)
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
        theta[:, 0, 0], theta[:, 0, 1] = cos * flip, -sin
        theta[:, 1, 0], theta[:, 1, 1] = sin * flip, cos
        if s.shift:  # grid units: 2 / size per pixel
            theta[:, 0, 2] = self._uniform(n, s.shift, x).round() * 2 / w
            theta[:, 1, 2] = self._uniform(n, s.shift, x).round() * 2 / h
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def _shift_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Shift each sequence by a random whole number of steps, repeating the edge value."""
        n, _, length = x.shape
        offset = self._uniform(n, self.spec.shift, x).round().long()  # (N,)
        idx = (torch.arange(length, device=x.device)[None] - offset[:, None]).clamp(0, length - 1)  # (N, L)
        return x.gather(2, idx[:, None].expand(-1, x.shape[1], -1))

    def _mixup(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixup (Zhang et al. 2018): convex mixtures of pairs; class targets become soft."""
        lam = float(self.rng.beta(self.spec.mixup, self.spec.mixup))
        perm = torch.randperm(len(x), generator=self.gen).to(x.device)
        x = lam * x + (1 - lam) * x[perm]
        if self.num_classes is not None:
            onehot = F.one_hot(y, self.num_classes).to(x.dtype)
            return x, lam * onehot + (1 - lam) * onehot[perm]
        return x, lam * y + (1 - lam) * y[perm]
