"""Which CPU speed-ups to switch on by default: each measured on whole training runs.

For a few example specs, trains the same spec with ``train.channels_last``,
``train.precision: bf16`` and ``train.compile`` switched on one at a time, and with every
choice left to ``auto``, alternating variants so machine noise hits all; repeat ``r`` uses
``seed: r``. Prints median wall time and test accuracy. A speed-up becomes a default only where
it is faster and accuracy holds.

    .venv/bin/python benchmarks/speedups.py [--repeats 3] [--cases fashion_cnn] [--variants fp32 auto]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import netwright
from netwright.spec import apply_override, read_yaml

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "digits_cnn": ["data.val=0.0", "data.test=0.2", "train.keep=last"],
    "mnist1d_cnn": [],
    "mnist1d_mlp": [],
    "mnist1d_gru": [],
    "fashion_cnn": [],  # 54,000 28x28 images: the size where bf16 pays (benchmarks/precision.py)
}
VARIANTS = {
    "baseline": ["train.precision=fp32", "train.channels_last=false"],
    "channels_last": ["train.precision=fp32", "train.channels_last=true"],
    "bf16": ["train.precision=bf16", "train.channels_last=false"],
    "compile": ["train.precision=fp32", "train.channels_last=false", "train.compile=true"],
    "fp32": ["train.precision=fp32"],  # every other choice auto
    "auto": [],  # every choice auto: what a user gets
}


def one(name: str, overrides: list[str], runs: str) -> tuple[float, float]:
    raw = read_yaml(ROOT / "examples" / f"{name}.yaml")
    for o in overrides:
        apply_override(raw, o)
    t0 = time.perf_counter()
    run = netwright.train(raw, name=f"{name}-{time.time_ns()}", runs_dir=runs, progress="quiet")
    seconds = time.perf_counter() - t0
    return seconds, netwright.evaluate(run, plots=False)["metrics"]["accuracy"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cases", nargs="*", default=[c for c in CASES if c != "fashion_cnn"])
    ap.add_argument("--variants", nargs="*", default=["baseline", "channels_last", "bf16", "compile"])
    args = ap.parse_args()
    print("| example | variant | seconds (median) | vs baseline | test accuracy (median) |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as runs:
        one("digits_cnn", CASES["digits_cnn"] + VARIANTS["baseline"], runs)  # warm-up: imports, allocator
        for case in args.cases:
            times: dict[str, list[float]] = {v: [] for v in args.variants}
            accs: dict[str, list[float]] = {v: [] for v in args.variants}
            for r in range(args.repeats):
                for v in args.variants:
                    seconds, acc = one(case, CASES[case] + VARIANTS[v] + [f"seed={r}"], runs)
                    times[v].append(seconds)
                    accs[v].append(acc)
            base = statistics.median(times[args.variants[0]])
            for v in args.variants:
                t = statistics.median(times[v])
                print(f"| {case} | {v} | {t:.2f} | {base / t:.2f}x | {statistics.median(accs[v]):.4f} |", flush=True)
            print(f"  {case}: {times}", file=sys.stderr)


if __name__ == "__main__":
    main()
