"""A user's own plugin file: a small residual network for images and a callback.

A spec names this file (``plugins: [my_models.py]``, relative to the spec); netwright imports it
before validating the spec, so the names registered here can be used like the built-in ones:

    netwright models tiny_resnet --plugin examples/plugins/my_models.py   # its hyper-parameters, from the signature below
    netwright train examples/plugins/digits_resnet.yaml

The run records the file's SHA-256; every later verb (evaluate, explain, compress, export,
predict, serve, report) imports it again and refuses if it changed since training.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import Field
from torch import nn

from netwright import Callback, DataInfo, NetwrightError, register_callback, register_model

PosInt = Annotated[int, Field(ge=1)]  # validated by the spec: model.channels: [0] is refused with its path


class Residual(nn.Module):
    """conv-bn-relu-conv-bn plus a shortcut (a 1x1 projection when the shape changes), then relu."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))  # (B, C_out, H / stride, W / stride)


class TinyResNet(nn.Module):
    def __init__(self, in_channels: int, classes: int, channels: list[int], blocks: int, dropout: float):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels[0]), nn.ReLU())
        layers, width = [], channels[0]
        for i, c in enumerate(channels):
            for j in range(blocks):
                layers.append(Residual(width, c, stride=2 if i > 0 and j == 0 else 1))
                width = c
        self.stages = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))  # global average pooling
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))  # (B, C, H', W')
        return self.head(self.dropout(self.pool(x)))  # (B, K) logits


@register_model("tiny_resnet", family="residual")
def tiny_resnet(
    info: DataInfo,
    channels: list[PosInt] = [16, 32],
    blocks: PosInt = 1,
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0,
) -> nn.Module:
    """A small ResNet for images: a conv stem, residual stages, global average pooling, a linear head.

    Args:
        channels: width of each stage; every stage after the first halves the picture.
        blocks: residual blocks per stage.
        dropout: dropout before the linear head.
    """
    if info.modality != "image":
        raise NetwrightError(f"model.name: tiny_resnet reads images (C, H, W); data {info.name!r} is "
                             f"{info.modality}; pick an image data set or another model")
    return TinyResNet(info.input_shape[0], info.num_outputs, channels, blocks, dropout)


class EpochCSV(Callback):
    """Writes each epoch's row of metrics.jsonl to a CSV file in the run folder."""

    def __init__(self, file: str):
        self.name, self.file, self.rows = "epoch_csv", file, []

    def on_train_start(self, run: Any, state: dict[str, Any]) -> None:
        path = Path(run.path) / self.file  # a resumed run keeps the rows up to its checkpoint
        if path.is_file():
            with path.open(newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if int(r["epoch"]) <= state["epoch"]]

    def on_epoch_end(self, run: Any, record: dict[str, Any]) -> None:
        self.rows.append(record)
        columns = list(dict.fromkeys(k for row in self.rows for k in row))
        with (Path(run.path) / self.file).open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)


@register_callback("epoch_csv")
def epoch_csv(file: str = "epochs.csv") -> Callback:
    """Write every epoch's metrics to a CSV file in the run folder (for a spreadsheet).

    Args:
        file: file name inside the run folder.
    """
    if "/" in file or "\\" in file or not file.endswith(".csv"):
        raise NetwrightError(f"train.callbacks: epoch_csv.file: give a plain .csv file name, got {file!r}")
    return EpochCSV(file)
