"""Real data: missing cells, and bulk prediction over a table bigger than one batch.

**Missing cells.** ``breast_cancer`` (569 rows, 30 numeric columns) written as CSV twice: complete,
and with a share of its cells (default 20%) blanked at random. The same MLP spec trains on both,
for each ``data.missing`` strategy, over several seeds (the split is the same for every run: it is
a function of the labels and the split seed); the table gives the median test accuracy and its
gap to the complete data, beside scikit-learn's ``LogisticRegression`` behind the same imputer on
the same rows as an independent reference.

**Bulk prediction.** A generated CSV of ``--rows`` rows (default 1,000,000; numeric and
categorical columns, 10% of the cells blank) is predicted by ``netwright predict RUN big.csv --out
preds.parquet`` in a subprocess; the table gives rows/s and the peak RSS of that process beside the
input file's size.

    .venv/bin/python benchmarks/data.py [--seeds 0 1 2] [--blank 0.2] [--rows 1000000] [--no-bulk]
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

import numpy as np

STRATEGIES = ("median", "iterative")


def write_breast_cancer(path: Path, blank: float, seed: int = 0) -> None:
    from sklearn.datasets import load_breast_cancer

    b = load_breast_cancer()
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([n.replace(" ", "_") for n in b.feature_names] + ["diagnosis"])
        for row, y in zip(b.data, b.target):
            w.writerow(["" if rng.random() < blank else repr(float(v)) for v in row] + [b.target_names[y]])


def spec(path: Path, missing: str, seed: int) -> dict:
    return {"data": {"name": "csv", "path": str(path), "target": "diagnosis", "missing": missing, "val": 0.15,
                     "test": 0.2},
            "model": {"name": "mlp", "hidden": [32]}, "seed": seed,
            "train": {"epochs": 30, "batch_size": 32, "threads": 1}}


def reference(path: Path, missing: str, train: np.ndarray, test: np.ndarray) -> float:
    """scikit-learn: the imputer (with indicators, as netwright adds them), scaling, logistic regression."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer, SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = list(csv.reader(open(path)))[1:]
    x = np.array([[float(c) if c else np.nan for c in r[:-1]] for r in rows])
    y = np.array([r[-1] == "malignant" for r in rows])
    imputer = IterativeImputer(max_iter=10, random_state=0, add_indicator=True) if missing == "iterative" \
        else SimpleImputer(strategy=missing, add_indicator=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = make_pipeline(imputer, StandardScaler(), LogisticRegression(max_iter=5000)).fit(x[train], y[train])
    return float(model.score(x[test], y[test]))


def missing_cells(seeds: list[int], blank: float) -> None:
    import netwright

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = {"complete": tmp / "complete.csv", "blank": tmp / "blank.csv"}
        write_breast_cancer(files["complete"], 0.0)
        write_breast_cancer(files["blank"], blank)
        cases = [("complete", "median")] + [("blank", s) for s in STRATEGIES]
        acc: dict[tuple[str, str], list[float]] = {c: [] for c in cases}
        for seed in seeds:
            for which, missing in cases:
                run = netwright.train(spec(files[which], missing, seed), name=f"{which}-{missing}-{seed}",
                                      runs_dir=tmp / "runs", progress="quiet")
                acc[(which, missing)].append(netwright.evaluate(run, plots=False)["metrics"]["accuracy"])
        data = run.load_data()  # the split every run shares
        train, test = _split_rows(run)
        base = statistics.median(acc[("complete", "median")])
        print(f"\nbreast_cancer, {blank:.0%} of the cells blank; MLP test accuracy, median of seeds {seeds} "
              f"({data.info.splits['test']} test rows)")
        print("| data | data.missing | netwright MLP | gap to complete | scikit-learn LR (same imputer) |")
        print("|---|---|---:|---:|---:|")
        for which, missing in cases:
            med = statistics.median(acc[(which, missing)])
            ref = reference(files[which], missing, train, test)
            gap = "" if which == "complete" else f"{100 * (med - base):+.1f} pts"
            runs = ", ".join(f"{a:.3f}" for a in acc[(which, missing)])
            print(f"| {which} | {missing if which == 'blank' else '-'} | {med:.3f} ({runs}) | {gap} | {ref:.3f} |")


def _split_rows(run) -> tuple[np.ndarray, np.ndarray]:
    """The run's train and test row numbers (in file order, after no rows were dropped)."""
    from netwright.data.prepare import fingerprint, split_indices
    from netwright.data.tabular import csv_file

    d = run.spec.data
    raw = csv_file(Path(d.params["path"]), target="diagnosis", missing=d.params["missing"])
    train, _, test, _ = split_indices(raw, fingerprint(raw), d.val, d.test, d.split_seed)
    return train, test


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--blank", type=float, default=0.2)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--no-bulk", action="store_true")
    p.add_argument("--images", type=int, default=0, help="also time decoding a folder of this many PNGs of mixed sizes")
    p.add_argument("--only-images", action="store_true")
    args = p.parse_args()
    t0 = time.perf_counter()
    if args.only_images:
        image_folder(args.images or 4000)
        return
    missing_cells(args.seeds, args.blank)
    if not args.no_bulk:
        bulk(args.rows)
    if args.images:
        image_folder(args.images)
    print(f"\n({time.perf_counter() - t0:.0f} s)")


def write_table(path: Path, rows: int, seed: int = 0, blank: float = 0.1) -> None:
    """``rows`` rows: an ID, 12 numeric and 4 categorical columns, 10% of the feature cells blank,
    and a label that depends on a few of them; written in blocks so that memory stays flat."""
    rng = np.random.default_rng(seed)
    colours = np.array(["red", "green", "blue", "grey", "black"])
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", *(f"x{i}" for i in range(12)), *(f"c{i}" for i in range(4)), "label"])
        for start in range(0, rows, 50_000):
            n = min(50_000, rows - start)
            x = rng.normal(size=(n, 12)).round(4)
            c = rng.integers(0, 5, size=(n, 4))
            y = (x[:, 0] + x[:, 1] - x[:, 2] + (c[:, 0] == 1) + 0.3 * rng.normal(size=n)) > 0.5
            cells = np.concatenate([x.astype(str), colours[c]], axis=1)
            cells[rng.random(cells.shape) < blank] = ""
            ids = np.arange(start, start + n).astype(str)
            w.writerows(np.column_stack([ids, cells, np.where(y, "yes", "no")]).tolist())


def bulk(rows: int) -> None:
    import netwright

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        small, big = tmp / "small.csv", tmp / "big.csv"
        write_table(small, 20_000, seed=1)
        write_table(big, rows, seed=2)
        run = netwright.train({"data": {"name": "csv", "path": str(small), "target": "label", "features":
                                        [*(f"x{i}" for i in range(12)), *(f"c{i}" for i in range(4))]},
                               "model": {"name": "mlp", "hidden": [64]}, "train": {"epochs": 3, "threads": 1}},
                              name="bulk", runs_dir=tmp / "runs", progress="quiet")
        print(f"\nbulk prediction: {rows:,} rows, {big.stat().st_size / 1e6:.0f} MB of CSV, 10% of the cells blank")
        print("| input -> output | seconds | rows/s | peak RSS of the process |")
        print("|---|---:|---:|---:|")
        parquet = tmp / "big.parquet"
        to_parquet(big, parquet)
        for src, out in ((big, "preds.parquet"), (big, "preds.csv"), (parquet, "preds2.parquet")):
            t0 = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "netwright", "predict", str(run.home), str(src), "--out",
                                     str(tmp / out), "--id", "id"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            peak = 0
            while proc.poll() is None:  # VmHWM: this process's own peak (ru_maxrss would carry the parent's over exec)
                peak = max(peak, high_water_kib(proc.pid))
                time.sleep(0.05)
            seconds = time.perf_counter() - t0
            if proc.returncode:
                raise SystemExit(f"predict failed: {proc.stderr.read().decode()}")
            print(f"| {src.suffix} -> {Path(out).suffix} | {seconds:.1f} | {rows / seconds:,.0f} | "
                  f"{peak / 1024:.0f} MiB |")


def image_folder(n: int, repeats: int = 3) -> None:
    """Decode a folder of ``n`` PNGs of mixed sizes (sized to 32x32, fit: crop) in one process and
    in worker processes (data.workers); medians of ``repeats``, alternating."""
    from PIL import Image

    from netwright.data.images import images

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i in range(n):
            d = root / f"class{i % 10}"
            d.mkdir(exist_ok=True)
            w, h = int(rng.integers(40, 120)), int(rng.integers(40, 120))
            Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(d / f"{i}.png")
        times: dict[str, list[float]] = {"1": [], "auto": []}
        for _ in range(repeats):
            for workers in times:
                t = time.perf_counter()
                images(root, image_size=(32, 32), fit="crop", workers=workers)
                times[workers].append(time.perf_counter() - t)
        one, auto = statistics.median(times["1"]), statistics.median(times["auto"])
        print(f"\nimage folder: {n:,} PNGs of 40-120 px, sized to 32x32 (crop); medians of {repeats}")
        print("| workers | seconds | images/s |")
        print("|---|---:|---:|")
        print(f"| 1 | {one:.2f} | {n / one:,.0f} |")
        print(f"| auto ({os.cpu_count()} cores) | {auto:.2f} | {n / auto:,.0f} ({one / auto:.2f}x) |")


def high_water_kib(pid: int) -> int:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def to_parquet(src: Path, dst: Path) -> None:
    """The CSV as Parquet, streamed (every column read as text, blanks as nulls)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    names = next(csv.reader(open(src)))
    reader = pacsv.open_csv(src, convert_options=pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names}, strings_can_be_null=True))
    with pq.ParquetWriter(dst, reader.schema) as w:
        for batch in reader:
            w.write_batch(batch)


if __name__ == "__main__":
    sys.exit(main())
