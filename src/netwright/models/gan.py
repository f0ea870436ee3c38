"""Generative adversarial network: a generator and a discriminator in one module.

Images get a DCGAN-style pair (transposed convolutions up, strided convolutions down), tabular
rows an MLP pair. The generator writes samples in the data's normalised space (for images,
squashed into the normalised pixel range), so the discriminator, the judge classifier and
``sample`` all read what the data loaders produce. With ``conditional``, both networks see
the class, and the generator can be asked for a chosen class.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..data.info import DataInfo
from ..errors import NetwrightError
from .common import Activation, PosInt, make_activation
from .registry import register_model


def _sn(layer: nn.Module, on: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(layer) if on else layer


class Generator(nn.Module):
    def __init__(self, info: DataInfo, latent_dim: int, channels: int, hidden: list[int], activation: str,
                 conditional: bool):
        super().__init__()
        self.image = info.modality == "image"
        self.shape = tuple(info.input_shape)
        k = info.num_classes if conditional else 0
        self.embed = nn.Embedding(k, latent_dim) if conditional else None
        if self.image:
            c, h, w = self.shape
            ups = 0
            while ups < 3 and h % 2 ** (ups + 1) == 0 and w % 2 ** (ups + 1) == 0 and min(h, w) // 2 ** (ups + 1) >= 2:
                ups += 1
            self.base = (channels * 2 ** ups, h // 2 ** ups, w // 2 ** ups)
            self.project = nn.Sequential(nn.Linear(latent_dim, math.prod(self.base)), make_activation(activation))
            layers: list[nn.Module] = []
            ch = self.base[0]
            for _ in range(ups):
                layers += [nn.ConvTranspose2d(ch, ch // 2, 4, stride=2, padding=1), nn.BatchNorm2d(ch // 2),
                           make_activation(activation)]
                ch //= 2
            layers.append(nn.Conv2d(ch, c, 3, padding=1))
            self.body = nn.Sequential(*layers)
            # samples live in the normalised pixel range [lo, hi] of each channel
            pre = info.preprocess
            lo, hi = pre.get("range", (0.0, 1.0))
            mean = torch.tensor(pre.get("mean", [0.0] * c))
            std = torch.tensor(pre.get("std", [1.0] * c))
            self.register_buffer("lo", ((lo - mean) / std).reshape(1, c, 1, 1))
            self.register_buffer("hi", ((hi - mean) / std).reshape(1, c, 1, 1))
        else:
            widths = [latent_dim, *hidden]
            layers = []
            for a, b in zip(widths, widths[1:]):
                layers += [nn.Linear(a, b), nn.BatchNorm1d(b), make_activation(activation)]
            layers.append(nn.Linear(widths[-1], math.prod(self.shape)))
            self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = z * self.embed(labels)  # (B, Z): the class modulates the noise
        if not self.image:
            return self.body(z).reshape(z.shape[0], *self.shape)  # shape[0]: the batch stays dynamic on export
        h = self.project(z).reshape(z.shape[0], *self.base)  # (B, C', h, w)
        out = torch.tanh(self.body(h))  # (B, C, H, W) in [-1, 1]
        return self.lo + (out + 1) / 2 * (self.hi - self.lo)


class Discriminator(nn.Module):
    def __init__(self, info: DataInfo, channels: int, hidden: list[int], spectral_norm: bool, conditional: bool):
        super().__init__()
        self.image = info.modality == "image"
        shape = tuple(info.input_shape)
        k = info.num_classes if conditional else 0
        if self.image:
            c, h, w = shape
            layers: list[nn.Module] = []
            ch_in, ch = c, channels
            while min(h, w) >= 4:
                layers += [_sn(nn.Conv2d(ch_in, ch, 4, stride=2, padding=1), spectral_norm), nn.LeakyReLU(0.2)]
                ch_in, ch, h, w = ch, ch * 2, h // 2, w // 2
            self.features = nn.Sequential(*layers, nn.Flatten(1))
            width = ch_in * h * w
        else:
            widths = [math.prod(shape), *hidden]
            layers = []
            for a, b in zip(widths, widths[1:]):
                layers += [_sn(nn.Linear(a, b), spectral_norm), nn.LeakyReLU(0.2)]
            self.features = nn.Sequential(nn.Flatten(1), *layers)
            width = widths[-1]
        self.out = _sn(nn.Linear(width, 1), spectral_norm)
        # projection discriminator (Miyato & Koyama 2018): the class enters as <embed(y), features>
        self.embed = _sn(nn.Embedding(k, width), spectral_norm) if conditional else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        f = self.features(x)  # (B, D)
        logit = self.out(f)[:, 0]
        if self.embed is not None and labels is not None:
            logit = logit + (self.embed(labels) * f).sum(1)
        return logit  # (B,)


class GAN(nn.Module):
    """A generator and a discriminator; ``forward(z, labels)`` generates."""

    def __init__(self, info: DataInfo, latent_dim: int, g_channels: int, d_channels: int, hidden: list[int],
                 activation: str, spectral_norm: bool, conditional: bool):
        super().__init__()
        self.latent_dim = latent_dim
        self.conditional = conditional
        self.num_classes = info.num_classes
        self.generator = Generator(info, latent_dim, g_channels, hidden, activation, conditional)
        self.discriminator = Discriminator(info, d_channels, hidden, spectral_norm, conditional)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(z, labels)

    def sample(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples (in eval mode; ``labels`` for a conditional model, random classes otherwise)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator).to(device)
        if self.conditional and labels is None:
            labels = torch.randint(0, self.num_classes, (n,), generator=generator)
        return self.generator(z, labels.to(device) if self.conditional else None)


@register_model("gan", family="adversarial", task="adversarial")
def gan(
    info: DataInfo,
    latent_dim: PosInt = 32,
    g_channels: PosInt = 32,
    d_channels: PosInt = 32,
    hidden: list[PosInt] = [128, 128],
    activation: Activation = "relu",
    spectral_norm: bool = True,
    conditional: bool = False,
) -> nn.Module:
    """Generative adversarial network: DCGAN-style for images, an MLP pair for tabular rows.

    Args:
        latent_dim: size of the generator's noise vector.
        g_channels: generator channels at full resolution (doubling per step down).
        d_channels: discriminator channels after the first convolution (doubling per step).
        hidden: widths of the tabular generator and discriminator.
        activation: generator non-linearity (the discriminator uses leaky ReLU).
        spectral_norm: spectral normalisation of the discriminator's layers (Miyato et al. 2018).
        conditional: generate a chosen class (both networks see the label).
    """
    if info.modality not in ("image", "tabular"):
        raise NetwrightError(f"model gan: generates images or tabular rows, not {info.modality} data")
    if info.task != "classification":
        raise NetwrightError("model gan: needs class labels (to judge the samples, and to condition on them)")
    return GAN(info, latent_dim, g_channels, d_channels, hidden, activation, spectral_norm, conditional)
