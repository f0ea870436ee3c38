"""A small U-Net (Ronneberger, Fischer & Brox 2015): an encoder that halves the image at each
level, a decoder that doubles it back, and at each level the encoder's features concatenated to
the decoder's (skip connections); a 1x1 convolution gives class logits for every pixel."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ..data.info import DataInfo
from ..errors import NetwrightError
from .common import Activation, Norm, PosInt, make_activation, make_norm
from .registry import register_model


def conv_block(c_in: int, c_out: int, convs: int, norm: str, activation: str) -> nn.Sequential:
    """``convs`` times 3x3 conv ('same' padding) -> norm -> activation."""
    layers: list[nn.Module] = []
    for _ in range(convs):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=norm == "none"), make_norm(norm, c_out, 2),
                   make_activation(activation)]
        c_in = c_out
    return nn.Sequential(*layers)


class UNet(nn.Module):
    def __init__(self, info: DataInfo, channels: list[int], convs_per_block: int, norm: str, activation: str,
                 upsample: str):
        super().__init__()
        if info.modality != "image" or info.task != "segmentation":
            raise NetwrightError(f"model unet labels every pixel of an image (data.name: fashion_segments); "
                                 f"'{info.name}' is {info.modality} {info.task} data")
        c, h, w = info.input_shape
        factor = 2 ** (len(channels) - 1)
        if h % factor or w % factor:
            raise NetwrightError(f"model.channels: {len(channels)} levels halve the image {len(channels) - 1} times, "
                                 f"so its sides must be multiples of {factor}; '{info.name}' is {h}x{w}: "
                                 "use fewer levels")
        self.encoder = nn.ModuleList()
        for out in channels:
            self.encoder.append(conv_block(c, out, convs_per_block, norm, activation))
            c = out
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for skip in reversed(channels[:-1]):  # deepest level first
            if upsample == "transpose":
                self.up.append(nn.ConvTranspose2d(c, skip, 2, stride=2))
            else:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                             nn.Conv2d(c, skip, 1)))
            self.decoder.append(conv_block(2 * skip, skip, convs_per_block, norm, activation))
            c = skip
        self.head = nn.Conv2d(c, info.num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> class logits per pixel (B, K, H, W)."""
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else self.pool(x))  # (B, C_i, H / 2^i, W / 2^i)
            skips.append(x)
        skips.pop()  # the deepest level is the decoder's start, not a skip
        for up, block in zip(self.up, self.decoder):
            x = block(torch.cat([up(x), skips.pop()], 1))  # (B, 2 C_i, ...) -> (B, C_i, ...)
        return self.head(x)  # (B, K, H, W)


@register_model("unet", family="convolutional", task="segmentation")
def unet(info: DataInfo, channels: list[PosInt] = [16, 32], convs_per_block: PosInt = 2, norm: Norm = "batch",
         activation: Activation = "relu", upsample: Literal["transpose", "bilinear"] = "transpose") -> nn.Module:
    """U-Net: an encoder-decoder with skip connections giving class logits for every pixel.

    Args:
        channels: channels of each level, from the full-size image down (each next level is half
            the size; the last is the bottleneck).
        convs_per_block: 3x3 convolutions in each level's block, encoder and decoder.
        norm: normalisation after each convolution (batch, layer: one group, or none).
        activation: non-linearity after each normalisation.
        upsample: how the decoder doubles the size: a learned 2x2 transposed convolution, or
            bilinear interpolation followed by a 1x1 convolution.
    """
    return UNet(info, channels, convs_per_block, norm, activation, upsample)
