"""How many CPU threads should training use? Step time at 1 and 2 threads per model size.

On a shared 2-core machine a second thread often costs more than it gains for small
models. This measures training steps (forward, backward, Adam) at 1 and 2 threads,
alternating, and prints the multiply-accumulates per example next to the speed-up,
which is how ``train.threads: auto`` decides (netwright/train/stage.py).

    .venv/bin/python benchmarks/threads.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from netwright.data import load_dataset
from netwright.models import build_model
from netwright.models.cost import forward_cost
from netwright.spec import load_spec

CASES = [
    ("mlp [128,64] / digits", "digits", {"name": "mlp"}, 64),
    ("cnn [32,64] / digits", "digits", {"name": "cnn"}, 64),
    ("gru 64 / mnist1d", "mnist1d", {"name": "rnn"}, 100),
    ("transformer 64x2 / digits", "digits", {"name": "transformer"}, 64),
    ("cnn [64,128] / digits", "digits", {"name": "cnn", "channels": [64, 128], "convs_per_block": 2}, 64),
    ("mlp [1024,1024] / digits", "digits", {"name": "mlp", "hidden": [1024, 1024]}, 64),
    ("cnn [32,64] / mnist1d", "mnist1d", {"name": "cnn"}, 100),
    ("gru 256 / mnist1d", "mnist1d", {"name": "rnn", "hidden_size": 256}, 100),
]


def step_time(model, opt, x, y, steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return (time.perf_counter() - t) / steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.3, help="per measurement")
    args = ap.parse_args()
    print("| model / data | MACs per example | MACs per step | ms/step 1 thread | ms/step 2 threads | 2-thread speed-up |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, dataset, model_spec, batch in CASES:
        spec = load_spec({"data": {"name": dataset}, "model": model_spec})
        data = load_dataset(spec.data)
        torch.manual_seed(0)
        model = build_model(spec.model.name, data.info, **spec.model.params)
        macs, seq = forward_cost(model, data.train.x)
        opt = torch.optim.Adam(model.parameters(), fused=True)
        x, y = data.train.x[:batch], data.train.y[:batch]
        torch.set_num_threads(1)
        step_time(model, opt, x, y, 3)
        steps = max(3, int(args.seconds / step_time(model, opt, x, y, 3)))
        times = {1: [], 2: []}
        for _ in range(args.repeats):
            for n in (1, 2):
                torch.set_num_threads(n)
                times[n].append(step_time(model, opt, x, y, steps))
        t1, t2 = statistics.median(times[1]), statistics.median(times[2])
        print(f"| {label} | {macs:,} | {macs // seq:,} | {t1 * 1e3:.2f} | {t2 * 1e3:.2f} | {t1 / t2:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
