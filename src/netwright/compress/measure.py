"""Size, parameters, multiply-accumulates, latency and accuracy of a model variant."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.info import DataInfo, Split


def parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def nonzero_fraction(module: nn.Module) -> float:
    """Share of weights that are not exactly zero."""
    total = sum(p.numel() for p in module.parameters())
    return sum(int((p != 0).sum()) for p in module.parameters()) / max(total, 1)


def macs(module: nn.Module, info: DataInfo) -> int:
    """Multiply-accumulates for one example, counted by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    from ..deploy.onnx_io import example_input

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module.eval()(example_input(info, 1))
    return counter.get_total_flops() // 2


def latency_ms(fn: Callable[[np.ndarray], Any], x: np.ndarray, budget_s: float = 0.4, repeats: int = 7) -> float:
    """Median milliseconds per call of ``fn(x)`` over ``repeats`` timed blocks, after warm-up."""
    return latency_spread_ms(fn, x, budget_s, repeats)[1]


def latency_spread_ms(fn: Callable[[np.ndarray], Any], x: np.ndarray, budget_s: float = 0.4,
                      repeats: int = 7) -> tuple[float, float, float]:
    """(fastest, median, slowest) milliseconds per call of ``fn(x)`` over ``repeats`` timed blocks."""
    for _ in range(3):
        fn(x)
    t0 = time.perf_counter()
    fn(x)
    per_block = max(1, int(budget_s / repeats / max(time.perf_counter() - t0, 1e-6)))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(per_block):
            fn(x)
        times.append((time.perf_counter() - t0) / per_block * 1e3)
    return min(times), statistics.median(times), max(times)


def score(outputs: np.ndarray, split: Split, classes: bool) -> float:
    """Accuracy (``classes``: outputs are logits over classes) or R² (outputs are values)."""
    y = split.y.numpy()
    if classes:
        return float((outputs.argmax(1) == y).mean())
    pred = outputs.reshape(-1).astype(np.float64)
    ss_res = float(((pred - y) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0


def file_size(path: str | Path | None) -> int | None:
    return Path(path).stat().st_size if path is not None and Path(path).is_file() else None
