"""``netwright init`` + ``train`` as written, on the bundled tables and generated ones, now (the
committed HEAD) against an earlier commit (default: 138fa35, the main before init read columns
the second-hour way); each side runs from its own git worktree.

Each table is written as a CSV the way its package ships it (scikit-learn's and scikit-lego's
frames, netwright's generated loans, the 3%-churn shop table of ``init_rare.py`` at two rule
strengths, and a shop table whose money is written '$1,234.50'); both versions run ``init TABLE
--target T``, then ``train`` and ``evaluate`` on the same split seed. Prints each table's test
metric (balanced accuracy for a classifier, R² for a regressor) per seed and the medians, and
says where a version could not train as written.

    .venv/bin/python benchmarks/init_tables.py [--before 138fa35] [--seeds 3] [--only shop3 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from init_rare import table as shop_table  # noqa: E402  (the 3%-churn table)

ROOT = Path(__file__).resolve().parents[1]


def _sklearn(loader: str, target: str):
    def write(path: Path, seed: int) -> str:
        import sklearn.datasets as d

        frame = getattr(d, loader)(as_frame=True).frame
        frame.to_csv(path, index=False)
        return target
    return write


def _sklego(loader: str, target: str):
    def write(path: Path, seed: int) -> str:
        import sklego.datasets as d

        getattr(d, loader)(as_frame=True).to_csv(path, index=False)
        return target
    return write


def _loans(path: Path, seed: int) -> str:
    from netwright.data.synthetic import write_csv

    write_csv(str(path), n=2000, seed=seed)
    return "decision"


def _shop(signal: float):
    def write(path: Path, seed: int) -> str:
        shop_table(path, 4000, seed, signal)
        return "churn"
    return write


def _money(path: Path, seed: int) -> str:
    """Spend written as money ('$1,234.50', a few 'n/a'), a plan spelt three ways, 2,000 rows."""
    rng = np.random.default_rng(seed)
    lines = ["spend,age,plan,bought"]
    for i in range(2000):
        spend, age, plan = rng.lognormal(6, 1), int(rng.integers(18, 80)), rng.choice(["basic", "pro"])
        y = int(rng.random() < 1 / (1 + np.exp(-(0.004 * (spend - 500) + (0.8 if plan == "pro" else -0.8)))))
        shown = "n/a" if i % 150 == 3 else f'"${spend:,.2f}"'
        lines.append(f"{shown},{age},{[plan, plan.upper(), plan.title()][i % 3]},{y}")
    path.write_text("\n".join(lines) + "\n")
    return "bought"


TABLES = {"iris": _sklearn("load_iris", "target"), "wine": _sklearn("load_wine", "target"),
          "breast_cancer": _sklearn("load_breast_cancer", "target"), "diabetes": _sklearn("load_diabetes", "target"),
          "hearts": _sklego("load_hearts", "target"), "penguins": _sklego("load_penguins", "species"),
          "loans": _loans, "shop3": _shop(1.0), "shop3_weak": _shop(0.5), "money": _money}


def run(version: str, src: Path, folder: Path, args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([sys.executable, "-m", "netwright", *args], cwd=folder, capture_output=True, text=True,
                          env=env)


def score(version: str, src: Path, folder: Path, csv: Path, target: str, seed: int) -> tuple[float | None, str]:
    """(test metric, what happened) of init + train as written by ``version``'s code at ``src``."""
    spec = folder / f"{version}.yaml"
    r = run(version, src, folder, ["init", csv.name, "--target", target, "--out", spec.name])
    if r.returncode:
        return None, f"init failed: {r.stderr.strip().splitlines()[-1]}"
    text = spec.read_text()
    written = yaml.safe_load(text)
    written["data"]["split_seed"] = seed
    written["name"] = version
    spec.write_text(yaml.safe_dump(written, sort_keys=False))
    for step in (["train", spec.name, "-q", "--overwrite"], ["evaluate", f"runs/{version}"]):
        r = run(version, src, folder, step)
        if r.returncode:
            return None, f"{step[0]} failed: {r.stderr.strip().splitlines()[-1]}"
    m = json.loads((folder / "runs" / version / "eval.json").read_text())["metrics"]
    key = "balanced_accuracy" if "balanced_accuracy" in m else "r2"
    used = ", ".join(written["data"].get("features", []))
    return float(m[key]), f"{key}; inputs {used}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="138fa35", help="the earlier commit to compare with")
    ap.add_argument("--now", default="HEAD", help="the commit to measure")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--only", nargs="*", choices=sorted(TABLES), help="these tables only")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"before": Path(tmp) / "before", "now": Path(tmp) / "now"}
        for side, rev in (("before", a.before), ("now", a.now)):
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(trees[side]), rev],
                           check=True)
        try:
            versions = {side: tree / "src" for side, tree in trees.items()}
            rows = []
            for name in a.only or TABLES:
                got: dict[str, list[float | None]] = {v: [] for v in versions}
                notes: dict[str, str] = {}
                for seed in range(a.seeds):
                    folder = Path(tmp) / f"{name}-{seed}"
                    folder.mkdir()
                    target = TABLES[name](folder / f"{name}.csv", seed)
                    for v, src in versions.items():
                        value, note = score(v, src, folder, folder / f"{name}.csv", target, seed)
                        got[v].append(value)
                        notes[v] = note
                    print(f"{name} seed {seed}: " + "; ".join(
                        f"{v} {'-' if x[-1] is None else f'{x[-1]:.3f}'} ({notes[v]})" for v, x in got.items()),
                        flush=True)
                med = {v: statistics.median(x) if all(y is not None for y in x) else None for v, x in got.items()}
                rows.append((name, notes["now"].split(";")[0] if "failed" not in notes["now"] else "-", med))
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    print(f"\n| table | metric (test) | {a.before} | now | now - before |\n|---|---|---:|---:|---:|")
    for name, key, med in rows:
        b, n = med["before"], med["now"]
        shown = lambda x: "did not train" if x is None else f"{x:.3f}"  # noqa: E731
        diff = f"{n - b:+.3f}" if b is not None and n is not None else "-"
        print(f"| {name} | {key} | {shown(b)} | {shown(n)} | {diff} |")
    print(f"\nmedians of {a.seeds} split seeds")


if __name__ == "__main__":
    main()
