"""The MNIST-1D reference recipe, as published with the dataset (Greydanus & Kobak, ICML 2024).

Models as described in the paper's repository (notebooks/models.py) and its training loop
(notebooks/train.py): Adam, learning rate 1e-2, batch 100, 8000 steps over the 4,000
training examples in order, the test set scored every 250 steps; raw (unnormalised)
inputs. Used by ``reproduce.py`` as the baseline that netwright's recipes are timed against.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn


class Logistic(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(40, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class MLP(nn.Module):
    def __init__(self, hidden: int = 100) -> None:
        super().__init__()
        self.linear1, self.linear2, self.linear3 = nn.Linear(40, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear1(x).relu()
        h = h + self.linear2(h).relu()
        return self.linear3(h)


class CNN(nn.Module):
    def __init__(self, channels: int = 25) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, channels, 5, stride=2, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.linear = nn.Linear(channels * 5, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.view(-1, 1, x.shape[-1])
        h = self.conv3(self.conv2(self.conv1(h).relu()).relu()).relu()
        return self.linear(h.flatten(1))


class GRU(nn.Module):
    def __init__(self, hidden: int = 6, steps: int = 40) -> None:
        super().__init__()
        self.gru = nn.GRU(1, hidden, batch_first=True, bidirectional=True)
        self.linear = nn.Linear(2 * hidden * steps, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x.view(*x.shape[:2], 1))
        return self.linear(out.reshape(len(out), -1))


MODELS = {"logistic": Logistic, "mlp": MLP, "cnn": CNN, "gru": GRU}


def train_reference(kind: str, data: dict, seed: int = 42, steps: int = 8000, batch: int = 100,
                    lr: float = 1e-2, eval_every: int = 250) -> dict:
    """Train one reference model; returns final test accuracy, seconds, and the accuracy curve."""
    torch.manual_seed(seed)
    model = MODELS[kind]()
    opt = torch.optim.Adam(model.parameters(), lr)
    x, y = torch.tensor(data["x"], dtype=torch.float32), torch.tensor(data["y"], dtype=torch.long)
    xt, yt = torch.tensor(data["x_test"], dtype=torch.float32), torch.tensor(data["y_test"], dtype=torch.long)
    curve = []
    t0 = time.perf_counter()
    for step in range(steps + 1):
        i = (step * batch) % len(x)
        loss = F.cross_entropy(model(x[i:i + batch]), y[i:i + batch])
        loss.backward()
        opt.step()
        opt.zero_grad()
        if step % eval_every == 0:
            with torch.no_grad():
                acc = (model(xt).argmax(-1) == yt).float().mean().item()
            curve.append((step, time.perf_counter() - t0, acc))
    return {"accuracy": curve[-1][2], "seconds": time.perf_counter() - t0, "curve": curve}
