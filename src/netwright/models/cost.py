"""Cheap cost estimate of a model: multiply-accumulates per example, from module hooks.

Counts the layers that dominate: linear, convolution, recurrent and attention layers.
It needs no tracing machinery, so it is fast enough to run before every training run
(the trainer uses it to choose a thread count).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _rnn_macs(m: nn.RNNBase, inp: tuple, _out: object) -> int:
    x = inp[0]
    steps = x.shape[1] if m.batch_first else x.shape[0]
    gates = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}[m.mode]
    dirs = 2 if m.bidirectional else 1
    h = m.hidden_size
    total = 0
    for layer in range(m.num_layers):
        width = m.input_size if layer == 0 else h * dirs
        total += gates * (width + h) * h
    return steps * dirs * total


def macs_per_example(model: nn.Module, example: torch.Tensor) -> int:
    """Approximate multiply-accumulates of one forward pass on one example."""
    return forward_cost(model, example)[0]


def forward_cost(model: nn.Module, example: torch.Tensor) -> tuple[int, int]:
    """(multiply-accumulates per example, longest chain of recurrent steps).

    The second number tells how much of the work is sequential: a recurrent layer over
    40 steps runs 40 small matrix products one after another.
    """
    counts: list[int] = []
    steps = [1]

    def hook(m: nn.Module, inp: tuple, out: object) -> None:
        if isinstance(m, nn.Linear):
            counts.append(math.prod(out.shape[:-1]) * m.in_features * m.out_features)
        elif isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            counts.append(out.numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size))
        elif isinstance(m, nn.RNNBase):
            counts.append(_rnn_macs(m, inp, out))
            steps.append(inp[0].shape[1] if m.batch_first else inp[0].shape[0])
        elif isinstance(m, nn.MultiheadAttention):
            q = inp[0]
            tokens = q.shape[1] if m.batch_first else q.shape[0]
            e = m.embed_dim
            counts.append(4 * tokens * e * e + 2 * tokens * tokens * e)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.RNNBase, nn.MultiheadAttention))]
    was = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example[:1])
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    return int(sum(counts)), max(steps)


def forward_flops(model: nn.Module, example: torch.Tensor) -> int:
    """FLOPs of one forward pass on one example, counted by ``torch.utils.flop_counter``
    (matrix products and convolutions: 2 per multiply-accumulate)."""
    from torch.utils.flop_counter import FlopCounterMode

    was = model.training
    try:
        model.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(example[:1])
    finally:
        model.train(was)
    return int(counter.get_total_flops())
