"""Loading and encoding a table: netwright's loader against pyarrow's CSV reader plus the same
encoding written with pandas and scikit-learn, and against an earlier commit's loader.

A generated table of ``--rows`` rows (default 300,000) with numbers (some blank), categories
(some blank, one with 400 values), ISO dates (some blank), free text (some blank) and a yes/no
target is written as CSV and as Parquet. Each reader runs in its own process (imports counted,
the file read, every column encoded to the float matrix a model reads) and reports its wall time
and peak RSS:

- ``netwright``: the ``csv`` / ``parquet`` loader of this checkout (it also decides each
  column's kind, which the reference is told);
- ``reference``: ``pyarrow.csv.read_csv`` (or ``pyarrow.parquet``), then pandas: the median and a
  missing indicator for numbers, one-hot categories with a missing column, date parts, and
  scikit-learn's ``HashingVectorizer`` for the text (the encoding netwright gives these columns);
- ``before``: the loader of ``--before`` (default 7537d87, the per-cell reader), from a git
  worktree, run ``--before-repeats`` times (it is slow).

    .venv/bin/python benchmarks/table_read.py [--rows 300000] [--repeats 3] [--before 7537d87]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

NETWRIGHT = """
import json, resource, sys, time
t = time.perf_counter()
from netwright.data.tabular import csv_file, parquet_file
path = sys.argv[1]
data = (csv_file if path.endswith(".csv") else parquet_file)(path, target="target")
print(json.dumps({"s": time.perf_counter() - t, "shape": list(data.x.shape),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

REFERENCE = """
import json, resource, sys, time
t = time.perf_counter()
import numpy as np, pandas as pd, pyarrow as pa, pyarrow.csv as pacsv, pyarrow.parquet as pq
from sklearn.feature_extraction.text import HashingVectorizer
path = sys.argv[1]
table = pacsv.read_csv(path) if path.endswith(".csv") else pq.read_table(path)
df = table.to_pandas()
blocks = []
for c in ["age", "income", "score", "hours", "rate"]:
    v = df[c].astype("float64")
    blocks += [v.fillna(v.median()).to_numpy()[:, None], v.isna().to_numpy()[:, None]]
for c in ["city", "plan", "channel"]:
    blocks.append(pd.get_dummies(df[c], dummy_na=df[c].isna().any()).to_numpy(dtype=np.float32))
blocks.append(df["zip"].astype("category").cat.codes.to_numpy()[:, None])  # 400 values: an index, embedded
when = pd.to_datetime(df["signup"])
days = (when - pd.Timestamp("1970-01-01")).dt.total_seconds() / 86400
parts = np.stack([when.dt.year, when.dt.month, when.dt.day, when.dt.weekday, days], axis=1).astype("float64")
parts = np.where(np.isnan(parts), np.nanmedian(parts, axis=0), parts)
blocks += [parts, when.isna().to_numpy()[:, None]]
vec = HashingVectorizer(n_features=256, ngram_range=(1, 2), alternate_sign=False, norm="l2")
blocks.append(vec.transform(df["note"].fillna("")).astype(np.float32).toarray())
x = np.concatenate(blocks, axis=1).astype(np.float32)
y = (df["target"] == "yes").to_numpy()
print(json.dumps({"s": time.perf_counter() - t, "shape": list(x.shape),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def table(n: int, seed: int = 0):
    """The generated table as an Arrow table (see the module)."""
    import pyarrow as pa

    r = np.random.default_rng(seed)

    def blanks(a: np.ndarray, share: float = 0.05) -> np.ndarray:
        a = a.astype(object)
        a[r.random(n) < share] = None
        return a

    words = np.array("the a quick brown fox jumps over lazy dog red blue shirt coat shoe bag fine poor good very"
                     .split())
    text = np.array([" ".join(words[r.integers(0, len(words), r.integers(3, 9))]) for _ in range(n)], dtype=object)
    days = np.datetime64("2020-01-01") + r.integers(0, 1500, n)
    age = r.normal(40, 12, n).round(0)
    score = r.normal(0, 1, n).round(4)
    plan = r.choice(["basic", "plus", "pro"], n)
    cols = {
        "age": blanks(age), "income": blanks(np.exp(r.normal(10, 0.5, n)).round(2)), "score": score,
        "hours": blanks(r.integers(0, 60, n)), "rate": r.random(n).round(3),
        "city": blanks(r.choice([f"city{i}" for i in range(30)], n)), "plan": plan,
        "channel": blanks(r.choice(["web", "store", "phone", "partner"], n)),
        "zip": r.choice([f"z{i:04d}" for i in range(400)], n),
        "signup": blanks(np.array([str(d) for d in days])), "note": blanks(text, 0.1),
    }
    logit = 0.03 * (age - 40) + (plan == "pro") + score
    cols["target"] = np.where(r.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return pa.table({k: pa.array(list(v)) for k, v in cols.items()})


def run(script: str, path: Path, pythonpath: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True,
                         env={"PYTHONPATH": str(pythonpath), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "2"})
    if out.returncode:
        raise SystemExit(f"{script[:40]!r} on {path.name} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--before", default="7537d87")
    ap.add_argument("--before-repeats", type=int, default=1)
    args = ap.parse_args()
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = table(args.rows)
        files = {"csv": tmp / "table.csv", "parquet": tmp / "table.parquet"}
        pacsv.write_csv(t, files["csv"])
        pq.write_table(t, files["parquet"])
        before = tmp / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before), args.before],
                       check=True, capture_output=True)
        try:
            runs: dict[tuple[str, str], list[dict]] = {}
            for i in range(max(args.repeats, args.before_repeats)):  # alternated, so load drifts hit all alike
                for fmt, path in files.items():
                    if i < args.repeats:
                        runs.setdefault(("netwright", fmt), []).append(run(NETWRIGHT, path, ROOT / "src"))
                        runs.setdefault(("reference", fmt), []).append(run(REFERENCE, path, ROOT / "src"))
                    if i < args.before_repeats:
                        runs.setdefault((f"before ({args.before})", fmt), []).append(
                            run(NETWRIGHT, path, before / "src"))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], capture_output=True)
    print(f"{args.rows:,} rows, {files['csv'].name}: wall time of the whole process (median) and peak RSS\n")
    print("| reader | file | seconds (median) | runs | peak RSS MB | matrix |")
    print("|---|---|---:|---:|---:|---|")
    for (who, fmt), rs in runs.items():
        print(f"| {who} | {fmt} | {statistics.median(r['s'] for r in rs):.2f} | {len(rs)} | "
              f"{max(r['rss_mb'] for r in rs):.0f} | {rs[0]['shape'][0]}x{rs[0]['shape'][1]} |")
    for fmt in files:
        ours = statistics.median(r["s"] for r in runs[("netwright", fmt)])
        ref = statistics.median(r["s"] for r in runs[("reference", fmt)])
        old = statistics.median(r["s"] for r in runs[(f"before ({args.before})", fmt)])
        print(f"\n{fmt}: netwright / reference {ours / ref:.2f}x; before / netwright {old / ours:.1f}x")


if __name__ == "__main__":
    main()
