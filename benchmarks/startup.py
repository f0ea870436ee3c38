"""How fast the CLI answers: wall-clock seconds of fresh ``netwright`` processes.

Trains the demo's digits CNN once (``examples/digits_cnn.yaml``, as ``netwright demo`` does)
into a temporary runs folder, writes a CSV of five digits, then times each command in a fresh
process, round robin (every command once, then again, ``--repeats`` times) so that machine
noise reaches all of them alike, beside ``python -c "import torch"``. Prints medians (and the
range) and each command's target from the project's first-minute issue.

    .venv/bin/python benchmarks/startup.py [--repeats 10]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NETWRIGHT = str(BIN / "netwright")


def targets(torch_s: float) -> dict[str, float]:
    """Each command's target in seconds (the torch import measured in the same run)."""
    return {"--help": 0.5, "runs": 0.8, "datasets": 0.8, "validate": torch_s + 0.5,
            "evaluate": torch_s + 1.5, "predict": torch_s + 1.5, "doctor": 3.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NETWRIGHT_RUNS=str(Path(tmp) / "runs"), NETWRIGHT_CACHE=str(Path(tmp) / "cache"))
        spec = str(ROOT / "examples" / "digits_cnn.yaml")
        print("training the demo's digits CNN once (a few seconds) ...", file=sys.stderr)
        subprocess.run([NETWRIGHT, "train", spec, "--name", "demo", "--quiet"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([NETWRIGHT, "doctor"], env=env, check=True, stdout=subprocess.DEVNULL)  # measures the peaks once
        rows = Path(tmp) / "digits.csv"
        with open(rows, "w", newline="") as f:  # five digits as the demo saw them: 64 pixel columns
            from sklearn.datasets import load_digits

            writer = csv.writer(f)
            writer.writerow([f"pixel_{i}" for i in range(64)])
            writer.writerows(load_digits().data[:5].astype(int).tolist())
        run = str(Path(tmp) / "runs" / "demo")
        commands = {
            "import torch": [sys.executable, "-c", "import torch"],
            "--help": [NETWRIGHT, "--help"],
            "runs": [NETWRIGHT, "runs"],
            "datasets": [NETWRIGHT, "datasets"],
            "validate": [NETWRIGHT, "validate", spec],
            "evaluate": [NETWRIGHT, "evaluate", run, "--split", "test"],
            "predict": [NETWRIGHT, "predict", run, str(rows)],
            "doctor": [NETWRIGHT, "doctor"],
        }
        times: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(args.repeats):
            for name, cmd in commands.items():
                t0 = time.perf_counter()
                done = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True)
                times[name].append(time.perf_counter() - t0)
                if done.returncode != 0:
                    sys.exit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")

    torch_s = statistics.median(times["import torch"])
    goal = targets(torch_s)
    print(f"\n{args.repeats} fresh processes each, round robin; seconds (median, min-max)\n")
    print("| command | median s | min-max s | target s | met |")
    print("|---|---:|---:|---:|:---:|")
    for name, ts in times.items():
        med = statistics.median(ts)
        label = "python -c 'import torch'" if name == "import torch" else f"netwright {name}"
        target = goal.get(name)
        shown = f"{target:.2f}" if target is not None else "-"
        met = "-" if target is None else ("yes" if med <= target else "NO")
        print(f"| {label} | {med:.2f} | {min(ts):.2f}-{max(ts):.2f} | {shown} | {met} |")


if __name__ == "__main__":
    main()
