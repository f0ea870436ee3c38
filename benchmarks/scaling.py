"""Data-parallel scaling: training samples per second with 1 and 2 processes (gloo, CPU).

Each configuration trains the same spec through ``netwright train --nproc N`` (torchrun), and
the median of the per-epoch throughputs in ``timing.jsonl`` (first epoch left out) is reported.
On a shared 2-core machine these numbers are noisy, and two processes compete for the two
cores that one two-thread process would use: this shows the mechanism, not a speed-up.
With a CUDA device, ``--gpu`` also measures the Transformer's throughput and model-FLOPs
utilisation (MFU) against ``--peak-tflops``.

    .venv/bin/python benchmarks/scaling.py [--epochs 6] [--gpu --peak-tflops 989]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

CASES = {
    "cnn / digits": {"data": {"name": "digits"}, "model": {"name": "cnn", "channels": [32, 64], "norm": "none"},
                     "train": {"batch_size": 128}},
    "mlp / mnist1d": {"data": {"name": "mnist1d"}, "model": {"name": "mlp", "hidden": [512, 512]},
                      "train": {"batch_size": 256}},
}


def throughput(spec: dict, nproc: int, threads: int, tmp: Path, name: str) -> float:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    cmd = [sys.executable, "-m", "netwright", "train", str(path), "--name", name, "--runs-dir", str(tmp), "-q",
           "--set", f"train.threads={threads}"] + (["--nproc", str(nproc)] if nproc > 1 else [])
    subprocess.run(cmd, check=True, capture_output=True)
    rows = [json.loads(line) for line in (tmp / name / "timing.jsonl").read_text().splitlines()]
    # every rank walks all global batches (taking its share of each): samples/s is the job's throughput
    return statistics.median(r["samples_per_s"] for r in rows[1:])


def gpu(peak_tflops: float, epochs: int, tmp: Path) -> None:
    import torch

    import netwright
    from netwright.report.collect import model_details

    spec = {"data": {"name": "mnist1d"}, "model": {"name": "transformer", "d_model": 256, "heads": 8, "layers": 6,
                                                  "ff_dim": 1024, "patch_size": 1},
            "train": {"epochs": epochs, "batch_size": 512, "device": "cuda"}}
    run = netwright.train(spec, name="gpu", runs_dir=tmp, progress="quiet")
    rows = [json.loads(line) for line in (run.path / "timing.jsonl").read_text().splitlines()]
    sps = statistics.median(r["samples_per_s"] for r in rows[1:])
    flops = model_details(run)["flops_per_example"] * 3  # forward + backward
    print(f"\nGPU ({torch.cuda.get_device_name()}): transformer on mnist1d, {sps:,.0f} samples/s, "
          f"{sps * flops / 1e12:.2f} TFLOP/s, MFU {100 * sps * flops / (peak_tflops * 1e12):.1f}% of {peak_tflops:g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="the GPU's dense bf16 peak (H100 SXM: 989)")
    args = ap.parse_args()
    print("| case | 1 process x 1 thread | 1 process x 2 threads | 2 processes x 1 thread | 2 proc / 1 proc (1 thread) |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, case in CASES.items():
            spec = {**case, "train": {**case["train"], "epochs": args.epochs, "checkpoint_interval": 0}}
            key = label.replace(" / ", "-")
            a = throughput(spec, 1, 1, Path(tmp), f"{key}-1x1")
            b = throughput(spec, 1, 2, Path(tmp), f"{key}-1x2")
            c = throughput(spec, 2, 1, Path(tmp), f"{key}-2x1")
            print(f"| {label} | {a:,.0f} | {b:,.0f} | {c:,.0f} | {c / a:.2f} |", flush=True)
        if args.gpu:
            gpu(args.peak_tflops, args.epochs, Path(tmp))


if __name__ == "__main__":
    main()
