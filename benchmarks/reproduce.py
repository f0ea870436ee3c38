"""Reproduce published accuracies with the example specs, and time them against the reference.

For each example spec: test accuracy over several seeds (mean ± std) next to the published
figure, and wall time per run. For MNIST-1D, the reference recipe published with the
dataset (``mnist1d_reference.py``: its models, Adam 1e-2, batch 100, 8,000 steps, run
through its hand-written loop) is trained in the same benchmark run, and the table shows
the time each side needs to reach the published accuracy: netwright's whole run, and the
reference's first evaluation (every 250 steps) at or above it (its whole run, marked "not
reached", when it never gets there).

    .venv/bin/python benchmarks/reproduce.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import netwright
from netwright.data.builtin import _mnist1d_arrays
from netwright.spec import apply_override, read_yaml

sys.path.insert(0, str(Path(__file__).parent))
from mnist1d_reference import train_reference  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# example -> (published test accuracy, reference model, overrides)
ROWS = {
    "mnist1d_logistic": (0.32, "logistic", []),
    "mnist1d_mlp": (0.68, "mlp", []),
    "mnist1d_cnn": (0.94, "cnn", []),
    "mnist1d_gru": (0.91, "gru", []),
    # digits: a stratified 80/20 split; an RBF SVM gets about 99.1%, a small CNN about 98.5%
    "digits_mlp": (None, None, ["data.val=0.0", "data.test=0.2", "train.keep=last"]),
    "digits_cnn": (0.99, None, ["data.val=0.0", "data.test=0.2", "train.keep=last"]),
}


def netwright_runs(example: str, overrides: list[str], seeds: list[int], runs: str) -> tuple[list[float], list[float]]:
    accs, secs = [], []
    for seed in seeds:
        raw = read_yaml(ROOT / "examples" / f"{example}.yaml")
        for o in overrides + [f"seed={seed}"]:
            apply_override(raw, o)
        t0 = time.perf_counter()
        run = netwright.train(raw, name=f"{example}-{seed}-{time.time_ns()}", runs_dir=runs, progress="quiet")
        secs.append(time.perf_counter() - t0)
        accs.append(netwright.evaluate(run, plots=False)["metrics"]["accuracy"])
    return accs, secs


def reference_runs(kind: str, target: float, seeds: list[int], threads: int) -> tuple[list[float], list[float], list[float | None]]:
    data = _mnist1d_arrays(5000, 42)
    torch.set_num_threads(threads)
    accs, secs, reach = [], [], []
    for seed in seeds:
        r = train_reference(kind, data, seed=seed)
        accs.append(r["accuracy"])
        secs.append(r["seconds"])
        reach.append(next((t for _, t, a in r["curve"] if a >= target), None))
    return accs, secs, reach


def pct(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.1f} ± {100 * sd:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rows", nargs="*", default=list(ROWS))
    ap.add_argument("--reference-threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    seeds = list(range(args.seeds))
    lines = []
    with tempfile.TemporaryDirectory() as runs:
        netwright_runs("digits_mlp", ROWS["digits_mlp"][2], [0], runs)  # warm-up: imports, caches
        for example in args.rows:
            published, ref_kind, overrides = ROWS[example]
            accs, secs = netwright_runs(example, overrides, seeds, runs)
            row = {"example": example, "published": published, "acc": accs, "secs": secs}
            if ref_kind:
                row["ref"] = reference_runs(ref_kind, published, seeds, args.reference_threads)
            lines.append(row)
            print(f"  {example}: {row}", file=sys.stderr, flush=True)

    print(f"\ntorch {torch.__version__}; {args.seeds} seeds; netwright threads: auto; "
          f"reference loop threads: {args.reference_threads}\n")
    print("| example | published | netwright test acc % | netwright s/run | reference acc % | reference s/run "
          "| reference s to published acc | netwright time / reference time |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in lines:
        pub = f"{100 * row['published']:.0f}%" if row["published"] else "-"
        nw_t = statistics.mean(row["secs"])
        cells = [row["example"], pub, pct(row["acc"]), f"{nw_t:.1f}"]
        if "ref" in row:
            r_acc, r_secs, reach = row["ref"]
            reached = [t for t in reach if t is not None]
            full = statistics.mean(r_secs)
            to_target = statistics.mean(reached) if len(reached) == len(reach) else None
            cells += [pct(r_acc), f"{full:.1f}",
                      f"{to_target:.1f}" if to_target is not None else f"not reached ({len(reached)}/{len(reach)})",
                      f"{nw_t / (to_target if to_target is not None else full):.2f}"]
        else:
            cells += ["-", "-", "-", "-"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
