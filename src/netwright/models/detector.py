"""A small single-shot detector: a convolutional backbone down to a grid, and per grid cell an
objectness score, class logits and one box (YOLO-style, one object per cell)."""

from __future__ import annotations

import torch
from torch import nn

from ..data.info import DataInfo
from ..errors import NetwrightError
from .common import PosInt, make_activation
from .registry import register_model


class Detector(nn.Module):
    def __init__(self, info: DataInfo, channels: list[int], box_size: float):
        super().__init__()
        if info.modality != "image" or info.task != "detection":
            raise NetwrightError(f"model detector finds boxes in images (data.name: fashion_scenes); '{info.name}' "
                                 f"is {info.task} data")
        c, h, w = info.input_shape
        layers: list[nn.Module] = []
        for out in channels:
            layers += [nn.Conv2d(c, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), make_activation("relu")]
            if h > 8:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c = out
        layers += [nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), make_activation("relu")]
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(c, 1 + info.num_classes + 4, 1)
        self.grid = (h, w)
        self.stride = info.input_shape[1] / h
        self.box_size = box_size  # the width / height an exp(0) box prediction means, in pixels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1 + K + 4, H', W'): objectness logit, class logits, box (dx, dy: logits of the
        centre's place in the cell; log of width and height over ``box_size``)."""
        return self.head(self.features(x))


@register_model("detector", family="detection", task="detection")
def detector(info: DataInfo, channels: list[PosInt] = [32, 64, 128], box_size: float = 24.0) -> nn.Module:
    """Single-shot detector over a grid (each block halves the image until an 8-cell grid).

    Args:
        channels: output channels of the backbone's blocks.
        box_size: typical object size in pixels (the box regression is relative to it).
    """
    return Detector(info, channels, box_size)
