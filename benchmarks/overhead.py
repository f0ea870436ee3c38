"""Trainer overhead: netwright's trainer against a hand-written PyTorch loop.

Same model (built by the same builder from the same seed), same data and split, same
batch size, optimizer, epochs and thread count. Both sides load the data and build the
model inside the timed region, and both score the validation split after every epoch;
netwright additionally validates the spec, writes the run directory, metrics and
checkpoints. A fourth column trains with one callback that does nothing (the hooks' own cost). Two netwright columns: its defaults (fused optimizer kernels), and the same
per-tensor optimizer kernels as the hand-written loop (``fused: false``), which isolates
the trainer's own overhead. Runs alternate (raw, netwright, netwright unfused, raw, ...)
in one process so that machine noise hits all; the table shows medians of per-repeat
ratios. Validation accuracies are printed as a sanity check only (few epochs).

    .venv/bin/python benchmarks/overhead.py [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

import netwright
from netwright.data import load_dataset
from netwright.models import build_model
from netwright.spec import load_spec
from netwright.training.callbacks import Callback

CASES = {
    "mlp / digits": {"data": {"name": "digits"}, "model": {"name": "mlp", "hidden": [128, 64]},
                     "train": {"epochs": 30, "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.001}}},
    "cnn / digits": {"data": {"name": "digits"}, "model": {"name": "cnn", "channels": [32, 64]},
                     "train": {"epochs": 10, "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.001}}},
    "gru / mnist1d": {"data": {"name": "mnist1d"}, "model": {"name": "rnn", "cell": "gru", "hidden_size": 64},
                      "train": {"epochs": 3, "batch_size": 100, "optimizer": {"name": "adam", "lr": 0.01}}},
}


def raw_loop(raw_spec: dict) -> tuple[float, float]:
    """What a user writes by hand; returns (seconds, final validation accuracy)."""
    t0 = time.perf_counter()
    spec = load_spec(raw_spec)
    data = load_dataset(spec.data)
    torch.manual_seed(spec.seed)
    model = build_model(spec.model.name, data.info, **spec.model.params)
    tr = spec.train
    opt = torch.optim.Adam(model.parameters(), lr=tr.optimizer.lr)
    x, y, xv, yv = data.train.x, data.train.y, data.val.x, data.val.y
    n, bs = len(y), tr.batch_size
    acc = 0.0
    for _ in range(tr.epochs):
        model.train()
        perm = torch.randperm(n)
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            opt.zero_grad()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = (model(xv).argmax(1) == yv).float().mean().item()
    return time.perf_counter() - t0, acc


def netwright_run(raw_spec: dict, runs_dir: str, i: int, callbacks: list | None = None) -> tuple[float, float]:
    t0 = time.perf_counter()
    run = netwright.train(raw_spec, name=f"r{i}", runs_dir=runs_dir, progress="quiet", overwrite=True,
                          callbacks=callbacks)
    seconds = time.perf_counter() - t0
    return seconds, run.read_json("train.json")["final"]["val_accuracy"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases:
            spec = {**CASES[name], "train": {**CASES[name]["train"], "threads": args.threads}}
            unfused = {**spec, "train": {**spec["train"], "optimizer": {**spec["train"]["optimizer"], "fused": False}}}
            raw_loop(spec), netwright_run(spec, tmp, -1)  # warm-up: imports, caches, allocator
            t = {"raw": [], "nw": [], "nw_unfused": [], "nw_callback": []}
            acc = {"raw": [], "nw": [], "nw_unfused": [], "nw_callback": []}
            for r in range(args.repeats):
                for key, fn in (("raw", lambda: raw_loop(spec)), ("nw", lambda: netwright_run(spec, tmp, r)),
                                ("nw_unfused", lambda: netwright_run(unfused, tmp, r)),
                                ("nw_callback", lambda: netwright_run(spec, tmp, r, [Callback()]))):
                    seconds, a = fn()
                    t[key].append(seconds)
                    acc[key].append(a)
            med = {k: statistics.median(v) for k, v in t.items()}
            ratio = {k: statistics.median([b / a for a, b in zip(t["raw"], t[k])])
                     for k in ("nw", "nw_unfused", "nw_callback")}
            ratio["callback_vs_none"] = statistics.median([b / a for a, b in zip(t["nw"], t["nw_callback"])])
            rows.append((name, med, ratio, {k: statistics.median(v) for k, v in acc.items()}))
            print(f"  {name}: {t}", file=sys.stderr)
    print(f"\ntorch {torch.__version__}, {args.threads} thread(s), {args.repeats} repeats, medians\n")
    print("| case | raw loop s | netwright s | netwright/raw | netwright unfused s | unfused/raw "
          "| one no-op callback / none | val acc raw / netwright / unfused |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, med, ratio, acc in rows:
        print(f"| {name} | {med['raw']:.3f} | {med['nw']:.3f} | {ratio['nw']:.3f} | {med['nw_unfused']:.3f} "
              f"| {ratio['nw_unfused']:.3f} | {ratio['callback_vs_none']:.3f} "
              f"| {acc['raw']:.3f} / {acc['nw']:.3f} / {acc['nw_unfused']:.3f} |")


if __name__ == "__main__":
    main()
