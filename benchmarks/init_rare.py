"""``netwright init`` on a table whose rarer class is about 3% of the rows: the spec as init writes
it (``class_weight: balanced``, ``monitor: val_f1``) against the same spec without those two keys
(what init wrote before it weighed rare classes), trained and evaluated on the same splits.

The table is generated here: a planted logistic rule over a money column (log-normal, with a few
'?' and 'n/a' cells), an age and a plan, the intercept set so that about 3% of the rows churn.
Prints the test balanced accuracy, macro F1 and accuracy of each spec for every seed, and the
medians.

    .venv/bin/python benchmarks/init_rare.py [--seeds 3] [--rows 4000] [--signal 1|0.5]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml


INTERCEPT = {1.0: -7.6, 0.5: -5.0}  # about 3% of the rows churn at each strength of the rule


def table(path: Path, rows: int, seed: int, signal: float = 1.0) -> float:
    """Write the table (``signal``: the rule's strength, 1 or 0.5); returns the share of the rare class."""
    rng = np.random.default_rng(seed)
    rare = 0
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["spend", "age", "plan", "churn"])
        for i in range(rows):
            spend, age, plan = rng.lognormal(3, 1), int(rng.integers(18, 80)), rng.choice(["basic", "pro", "max"])
            logit = INTERCEPT[signal] + signal * (0.06 * (spend - 20) + (1.2 if plan == "max" else 0) + 0.03 * (age - 50))
            y = int(rng.random() < 1 / (1 + np.exp(-logit)))
            rare += y
            cell = "?" if i % 250 == 3 else "n/a" if i % 300 == 7 else f"{spend:.2f}"
            w.writerow([cell, age, plan, y])
    return rare / rows


def netwright(*args: str, cwd: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "netwright", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"netwright {' '.join(args)}: {r.stderr.strip()}")


def scores(folder: Path, spec: dict, name: str) -> dict[str, float]:
    import json

    (folder / f"{name}.yaml").write_text(yaml.safe_dump({**spec, "name": name}))
    netwright("train", f"{name}.yaml", "-q", cwd=folder)
    netwright("evaluate", f"runs/{name}", cwd=folder)
    m = json.loads((folder / "runs" / name / "eval.json").read_text())["metrics"]
    return {k: m[k] for k in ("balanced_accuracy", "f1", "accuracy")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rows", type=int, default=4000)
    ap.add_argument("--signal", type=float, default=1.0, choices=sorted(INTERCEPT),
                    help="the planted rule's strength: 1 (learnt well either way) or 0.5 (a weak rule)")
    a = ap.parse_args()
    results: dict[str, list[dict[str, float]]] = {"init now": [], "without the two keys": []}
    for seed in range(a.seeds):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            share = table(folder / "shop.csv", a.rows, seed, a.signal)
            netwright("init", "shop.csv", "--target", "churn", cwd=folder)
            spec = yaml.safe_load((folder / "shop.yaml").read_text())
            assert spec["train"].get("class_weight") == "balanced", "init did not weigh the rare class"
            spec["data"]["split_seed"] = seed
            before = {**spec, "train": {k: v for k, v in spec["train"].items() if k not in ("class_weight", "monitor")}}
            results["init now"].append(scores(folder, spec, "now"))
            results["without the two keys"].append(scores(folder, before, "before"))
            print(f"seed {seed} (rare class {share:.1%} of {a.rows} rows): "
                  + "; ".join(f"{k}: balanced accuracy {v[-1]['balanced_accuracy']:.3f}, macro F1 {v[-1]['f1']:.3f}, "
                              f"accuracy {v[-1]['accuracy']:.3f}" for k, v in results.items()), flush=True)
    print("\n| spec | balanced accuracy | macro F1 | accuracy |\n|---|---:|---:|---:|")
    for k, v in results.items():
        med = {m: statistics.median(r[m] for r in v) for m in ("balanced_accuracy", "f1", "accuracy")}
        print(f"| {k} | {med['balanced_accuracy']:.3f} | {med['f1']:.3f} | {med['accuracy']:.3f} |")
    gain = statistics.median(n["balanced_accuracy"] - b["balanced_accuracy"]
                             for n, b in zip(results["init now"], results["without the two keys"]))
    print(f"\nmedian gain in balanced accuracy: {gain:+.3f} (medians of {a.seeds} seeds)")


if __name__ == "__main__":
    main()
