"""What a training job runs on: the device, the threads, the precision and the memory format,
each resolved from the spec's ``auto`` by the model's measured cost."""

from __future__ import annotations

import os

import torch

from ..errors import NetwrightError
from ..models.cost import forward_cost
from ..spec import TrainSpec


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when visible, else CPU; ``cuda`` without a GPU is an error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise NetwrightError("train.device: cuda was asked for but no CUDA device is visible; use auto or cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# benchmarks/threads.py on a shared 2-core machine: a second thread pays off once a model
# does ~100k multiply-accumulates per example and each sequential step does ~50k of them
# (a CNN on digits: 1.3x; an MLP on digits or a 64-unit GRU over 40 steps: no gain).
PARALLEL_MACS, PARALLEL_MACS_PER_STEP = 100_000, 50_000


def resolve_threads(threads: int | str, model: torch.nn.Module, example: torch.Tensor, share: int = 1) -> int:
    """``auto``: one thread for small or step-by-step models, otherwise every core (at most 8),
    divided among the ``share`` processes of a distributed job on this machine (``model``: the
    network whose forward sets a step's cost, e.g. a GAN's discriminator)."""
    if threads != "auto":
        return int(threads)
    macs, steps = forward_cost(model, example)
    if macs < PARALLEL_MACS or macs / steps < PARALLEL_MACS_PER_STEP:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores // share, 8))


# benchmarks/precision.py (training steps, fp32 against bf16 autocast, 2 threads of an Intel Xeon
# with AMX and AVX512-BF16, quiet machine, medians of 5): bf16 gained 1.38x at 384M
# multiply-accumulates a step (a [64,128] CNN on digits) and 2.22x at 2.4G (the Fashion-MNIST
# CNN at batch 128); at 22-76M it gained 0.5-1.17x (the digits MLP and CNN, the transformer, a
# wide MLP) and the GRU's small sequential steps lost (0.78x). One exception below the line: the
# 1-D CNN on MNIST-1D gained 1.31x at 21M; the rule keeps it in fp32, which costs it that gain.
BF16_MACS_PER_STEP = 200_000_000


def resolve_precision(train_spec: TrainSpec, device: torch.device, model: torch.nn.Module, example: torch.Tensor,
                      mixed: bool) -> tuple[bool, str]:
    """(bf16 autocast?, why) for ``train.precision`` on this device and model.

    ``auto``: bf16 on CUDA; on a CPU, bf16 when it runs natively (AVX512-BF16 or AMX) and a
    training step is large enough to pay for the conversions, fp32 otherwise; always fp32 for a
    kind whose steps do not run under autocast (``mixed`` false).
    """
    from ..hardware import native_bf16

    if train_spec.precision != "auto":
        return train_spec.precision == "bf16", f"train.precision: {train_spec.precision}"
    if not mixed:
        return False, "fp32: this kind of model trains in full precision"
    if device.type == "cuda":
        return True, "bf16: auto on CUDA"
    if not native_bf16():
        return False, "fp32: this CPU has no native bf16 (AVX512-BF16 or AMX)"
    macs, steps = forward_cost(model, example)
    per_step = macs * train_spec.batch_size
    if per_step / steps < BF16_MACS_PER_STEP:
        return False, (f"fp32: {per_step / steps / 1e6:,.0f}M multiply-accumulates a step"
                       f"{' (sequential step)' if steps > 1 else ''} is below the "
                       f"{BF16_MACS_PER_STEP / 1e6:,.0f}M where bf16 pays on this CPU")
    return True, (f"bf16: native on this CPU and {per_step / 1e6:,.0f}M multiply-accumulates a step "
                  f">= {BF16_MACS_PER_STEP / 1e6:,.0f}M")


def resolve_channels_last(train_spec: TrainSpec, model: torch.nn.Module) -> bool:
    """Channels-last memory format: ``auto`` uses it for every 2-D convolutional model
    (benchmarks/speedups.py: the digits CNN 1.16x faster at the same accuracy)."""
    conv2d = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    return conv2d and train_spec.channels_last in ("auto", True)
