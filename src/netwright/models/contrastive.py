"""A self-supervised image encoder trained contrastively (SimCLR, Chen et al. 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.info import DataInfo
from ..errors import NetwrightError
from .cnn import CNN
from .common import Activation, Norm, PosInt, mlp_layers
from .registry import register_model


class Contrastive(nn.Module):
    """The cnn family's convolutional features (the same parameter names as a ``cnn``
    classifier's, ``features.*``, so a classifier can start from them with ``train.init_from``),
    flattened, then a projection MLP whose unit-length outputs two views of an image must match."""

    def __init__(self, info: DataInfo, channels: list[int], kernel_size: int, convs_per_block: int,
                 activation: str, norm: str, projection: list[int]):
        super().__init__()
        if info.modality != "image":
            raise NetwrightError(f"model contrastive learns from two augmented views of an image; '{info.name}' is "
                                 f"{info.modality} data")
        cnn = CNN(info, channels, kernel_size, convs_per_block, "max", [], activation, 0.0, norm, "flatten", 16)
        self.features, self.pool = cnn.features, cnn.pool
        self.projection = mlp_layers(cnn.head[-1].in_features, projection[:-1], projection[-1], "relu", 0.0)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The representation a probe reads: flattened convolutional features."""
        return self.pool(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projection(self.embed(x)), dim=1)


@register_model("contrastive", family="self_supervised", task="contrastive")
def contrastive(
    info: DataInfo,
    channels: list[PosInt] = [32, 64],
    kernel_size: PosInt = 3,
    convs_per_block: PosInt = 1,
    activation: Activation = "relu",
    norm: Norm = "batch",
    projection: list[PosInt] = [256, 64],
) -> nn.Module:
    """Self-supervised encoder: a cnn's convolutional blocks trained so that two random
    augmentations of the same image map close together and apart from the other images of the
    batch (NT-Xent loss; labels unused). Probe or fine-tune it with a ``cnn`` of the same
    channels and ``train.init_from``.

    Args:
        channels: output channels of each convolutional block (as in cnn).
        kernel_size: odd kernel size.
        convs_per_block: convolutions before each pooling step.
        activation: non-linearity after each convolution.
        norm: normalisation after each convolution.
        projection: widths of the projection MLP; the last is the compared embedding.
    """
    return Contrastive(info, channels, kernel_size, convs_per_block, activation, norm, projection)
