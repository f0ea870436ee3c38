"""Tuning: what pruning saves, and the Done-means study of ``examples/mnist1d_mlp_tune.yaml``.

Runs the same study (same spec, sampler and seed, one worker of one thread each so that the
trials' values are reproducible and the two do not fight over the cores) twice side by side, with the median pruner and with none, and reports the epochs
trained, the wall time and the best validation value of each; ``--seeds`` repeats that for
several sampler seeds (medians). Then, unless ``--no-workers``, times the study as a user runs it
(``netwright tune ... --trials 30 --workers 2``) and scores its best trial on the test split
beside the hand-written ``mnist1d_mlp`` example's published 70.1%.

    .venv/bin/python benchmarks/tune_pruning.py [--trials 30] [--seeds 0 1 2] [--no-workers]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "mnist1d_mlp_tune.yaml"


def study(args: tuple[str, str, int, int]) -> dict:
    runs, pruner, seed, trials = args
    from netwright.stages.tune import tune

    t0 = time.perf_counter()
    s = tune(SPEC, overrides=[f"tune.pruner={pruner}", f"seed={seed}", "train.threads=1"], name=f"{pruner}-{seed}", runs_dir=runs,
             trials=trials, quiet=True)
    return {"pruner": pruner, "seed": seed, "epochs": s["epochs_trained"], "seconds": time.perf_counter() - t0,
            "best": s["best"]["value"], "test": s["best"]["test"]["accuracy"], "pruned": s["counts"].get("PRUNED", 0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--seeds", type=int, nargs="*", default=[0])
    ap.add_argument("--no-workers", action="store_true", help="skip the 2-worker study")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [(tmp, pruner, seed, args.trials) for seed in args.seeds for pruner in ("median", "none")]
        with ProcessPoolExecutor(2) as pool:  # each pair side by side, one core each
            rows = list(pool.map(study, jobs))
        print("| sampler seed | pruner | trials pruned | epochs trained | seconds | best val_accuracy | its test accuracy |")
        print("|---:|---|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['seed']} | {r['pruner']} | {r['pruned']} | {r['epochs']} | {r['seconds']:.0f} | "
                  f"{r['best']:.4f} | {r['test']:.4f} |")
        cuts, gaps = [], []
        for seed in args.seeds:
            m, n = (next(r for r in rows if r["seed"] == seed and r["pruner"] == p) for p in ("median", "none"))
            cuts.append(1 - m["epochs"] / n["epochs"])
            gaps.append(100 * (n["best"] - m["best"]))
        print(f"\npruning cut the epochs trained by {100 * statistics.median(cuts):.0f}% (median over "
              f"{len(cuts)} seed{'s' * (len(cuts) > 1)}: {', '.join(f'{100 * c:.0f}%' for c in cuts)}); the best value "
              f"without pruning minus with it: {statistics.median(gaps):+.2f} points "
              f"({', '.join(f'{g:+.2f}' for g in gaps)})")
        if args.no_workers:
            return
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "netwright", "tune", str(SPEC), "--trials", "30", "--workers", "2",
                            "--runs-dir", tmp, "--name", "workers2", "--quiet"], capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if r.returncode:
            sys.exit(r.stderr)
        s = json.loads((Path(tmp) / "workers2" / "study.json").read_text())
        print(f"\nnetwright tune {SPEC.relative_to(ROOT)} --trials 30 --workers 2: {seconds:.0f} s, "
              f"{s['counts']}, {s['epochs_trained']} epochs; best trial {s['best']['number']} val_accuracy "
              f"{s['best']['value']:.4f}, test accuracy {s['best']['test']['accuracy']:.4f} "
              f"(hand-written mnist1d_mlp: 0.701)")


if __name__ == "__main__":
    main()
