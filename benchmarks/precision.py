"""When does bf16 autocast pay on this CPU? Training-step time in fp32 and bf16 per model size.

Measures training steps (forward, backward, fused AdamW) with and without
``torch.autocast("cpu", dtype=torch.bfloat16)``, alternating, on the example models at their
batch sizes, channels-last for 2-D convolutions as the trainer does, with every core (at most
8). Prints the multiply-accumulates per example and per step beside the speed-up, which is how
``train.precision: auto`` decides (netwright/training/stage.py: BF16_MACS_PER_STEP).

    .venv/bin/python benchmarks/precision.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

from netwright.data import load_dataset
from netwright.models import build_model
from netwright.models.cost import forward_cost
from netwright.spec import load_spec

FASHION_CNN = {"name": "cnn", "channels": [32, 64], "convs_per_block": 2, "hidden": [128], "dropout": 0.3}
CASES = [
    ("mlp [128,64] / digits", "digits", {"name": "mlp"}, 64),
    ("cnn [32,64] / digits (the demo)", "digits", {"name": "cnn", "channels": [32, 64], "hidden": [128]}, 64),
    ("cnn [32,64] / mnist1d", "mnist1d", {"name": "cnn"}, 100),
    ("gru 64 / mnist1d", "mnist1d", {"name": "rnn", "cell": "gru", "hidden_size": 64}, 100),
    ("transformer 64x2 / digits", "digits", {"name": "transformer"}, 64),
    ("mlp [1024,1024] / digits", "digits", {"name": "mlp", "hidden": [1024, 1024]}, 64),
    ("cnn [64,128] / digits", "digits", {"name": "cnn", "channels": [64, 128], "convs_per_block": 2}, 64),
    ("cnn [32,64]x2 / fashion_mnist (examples/fashion_cnn.yaml)", "fashion_mnist", FASHION_CNN, 128),
]


def step_time(model, opt, x, y, steps: int, bf16: bool) -> float:
    t = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        if bf16:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(x).float()
        else:
            out = model(x)
        F.cross_entropy(out, y).backward()
        opt.step()
    return (time.perf_counter() - t) / steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.5, help="per measurement")
    ap.add_argument("--only", default="", help="run the cases whose label contains this")
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(min(cores, 8))
    print(f"{torch.get_num_threads()} threads; native bf16: {torch.ops.mkldnn._is_mkldnn_bf16_supported()}")
    print("| model / data | batch | MACs per example | MACs per step | MACs per sequential step | ms/step fp32 | ms/step bf16 | bf16 speed-up |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, dataset, model_spec, batch in [c for c in CASES if not args.only or args.only in c[0]]:
        spec = load_spec({"data": {"name": dataset, "val": 0.1}, "model": model_spec})
        data = load_dataset(spec.data)
        torch.manual_seed(0)
        model = build_model(spec.model.name, data.info, **spec.model.params)
        macs, seq = forward_cost(model, data.train.x)
        x, y = data.train.x[:batch], data.train.y[:batch]
        if any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
            model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.parameters(), fused=True)
        for bf16 in (False, True):
            step_time(model, opt, x, y, 3, bf16)
        steps = max(3, int(args.seconds / step_time(model, opt, x, y, 3, False)))
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.repeats):
            for bf16 in (False, True):
                times[bf16].append(step_time(model, opt, x, y, steps, bf16))
        t32, t16 = statistics.median(times[False]), statistics.median(times[True])
        print(f"| {label} | {batch} | {macs:,} | {macs * batch:,} | {macs // seq:,} | {t32 * 1e3:.2f} | "
              f"{t16 * 1e3:.2f} | {t32 / t16:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
