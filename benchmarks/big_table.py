"""A table bigger than memory: a generated Parquet file of several GB trained for one epoch
streamed (``data: {name: parquet, stream: true}``), then predicted in bulk.

The file: ``--rows`` rows (default 32 million) of ``--numeric`` float columns (18) and two
categorical columns, 10% of the cells null, a label that depends on a few columns; row groups of
``--group`` rows. It is written once into ``--folder`` and reused.

Reported: the file's size; the time until the first training step; the epoch's time and
samples/s; the peak resident memory of the training process and of its largest decoding worker
(Linux ``ru_maxrss``); test accuracy; the bulk prediction's time and peak memory.

With ``--csv`` the same table is written as a CSV (once) and trained from it: ``data: {name: csv,
stream: true}`` converts it into a Parquet copy (in ``FOLDER/cache``) before the first step, so
the time to the first step includes the conversion.

    .venv/bin/python benchmarks/big_table.py [--rows 32000000] [--workers auto] [--folder /tmp/netwright-big] [--no-bulk | --bulk-only] [--csv]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from data import high_water_kib  # benchmarks/data.py: the same peak, read the same way

TRAIN = r"""
import json, resource, sys, time
import netwright
from netwright.training.callbacks import Callback

t0 = time.time()
marks = {}

class Clock(Callback):
    def on_train_start(self, run, state):
        marks["first_step_s"] = time.time() - t0

    def on_epoch_end(self, run, record):
        marks["epoch_end_s"] = time.time() - t0
        return False

path, runs, workers = sys.argv[1], sys.argv[2], sys.argv[3]
spec = {"data": {"name": path.rsplit(".", 1)[1], "path": path, "target": "label", "stream": True, "workers": workers},
        "model": {"name": "mlp", "hidden": [64]}, "train": {"epochs": 1, "batch_size": 512, "threads": 1}}
run = netwright.train(spec, name="big", runs_dir=runs, overwrite=True, progress="quiet", callbacks=[Clock()])
marks["train_peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
marks["worker_peak_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
summary = run.read_json("train.json")
marks["samples_per_s"] = summary.get("samples_per_second") or summary.get("throughput")
marks["train_rows"] = run.info.splits["train"]
ev = netwright.evaluate(run, plots=False)
marks["test_accuracy"], marks["test_rows"] = ev["metrics"]["accuracy"], ev["n"]
marks["majority"] = ev["baseline"]["metrics"]["accuracy"]
marks["total_s"] = time.time() - t0
print(json.dumps(marks))
"""


def write_table(path: Path, rows: int, numeric: int, group: int, seed: int = 0) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    writer = None
    colours, shops = np.array(["red", "green", "blue", "grey"]), np.array([f"S{i:03d}" for i in range(40)])
    for start in range(0, rows, group):
        n = min(group, rows - start)
        x = rng.normal(size=(n, numeric))
        c, s = rng.integers(0, 4, n), rng.integers(0, 40, n)
        y = (x[:, 0] + x[:, 1] - x[:, 2] + (c == 1) + 0.5 * rng.normal(size=n)) > 0.5
        cols = {}
        for i in range(numeric):
            null = rng.random(n) < 0.1
            cols[f"x{i}"] = pa.array(x[:, i], mask=null)
        cols["colour"] = pa.array(colours[c], mask=rng.random(n) < 0.1)
        cols["shop"] = pa.array(shops[s], mask=rng.random(n) < 0.1)
        cols["label"] = pa.array(np.where(y, "yes", "no"))
        table = pa.table(cols)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression="snappy")
        writer.write_table(table, row_group_size=group)
    writer.close()


def write_csv(parquet: Path, out: Path) -> None:
    """The Parquet table as a CSV, a row group at a time (numbers rounded to 5 decimals)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    f = pq.ParquetFile(parquet)
    writer = None
    for g in range(f.num_row_groups):
        t = f.read_row_group(g)
        t = pa.table({c: pc.round(t[c], 5) if pa.types.is_floating(t[c].type) else t[c] for c in t.column_names})
        if writer is None:
            writer = pacsv.CSVWriter(out, t.schema)
        writer.write_table(t)
    writer.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=32_000_000)
    p.add_argument("--numeric", type=int, default=18)
    p.add_argument("--group", type=int, default=100_000)
    p.add_argument("--workers", default="auto")
    p.add_argument("--folder", default="/tmp/netwright-big")
    p.add_argument("--no-bulk", action="store_true")
    p.add_argument("--bulk-only", action="store_true", help="predict with the run trained by an earlier call")
    p.add_argument("--csv", action="store_true", help="train from the table written as a CSV (streamed)")
    args = p.parse_args()
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"table-{args.rows}-{args.numeric}-{args.group}.parquet"
    if not path.is_file():
        t = time.perf_counter()
        write_table(path.with_suffix(".tmp"), args.rows, args.numeric, args.group)
        os.replace(path.with_suffix(".tmp"), path)
        print(f"wrote {path} in {time.perf_counter() - t:.0f} s")
    if args.csv:
        csv_path = path.with_suffix(".csv")
        if not csv_path.is_file():
            t = time.perf_counter()
            write_csv(path, csv_path.with_suffix(".tmp"))
            os.replace(csv_path.with_suffix(".tmp"), csv_path)
            print(f"wrote {csv_path} in {time.perf_counter() - t:.0f} s")
        path = csv_path
    size = path.stat().st_size
    print(f"{path.name}: {args.rows:,} rows, {args.numeric + 3} columns, {size / 1e9:.2f} GB")
    if not args.bulk_only:
        done = subprocess.run([sys.executable, "-c", TRAIN, str(path), str(folder / "runs"), str(args.workers)],
                              capture_output=True, text=True, env={**os.environ, "NETWRIGHT_CACHE": str(folder / "cache")})
        if done.returncode:
            raise SystemExit(f"training failed: {done.stderr[-3000:]}")
        m = json.loads(done.stdout.strip().splitlines()[-1])
        epoch = m["epoch_end_s"] - m["first_step_s"]
        print("| measure | value |")
        print("|---|---:|")
        print(f"| file | {size / 1e9:.2f} GB, {args.rows:,} rows |")
        print(f"| time to the first training step | {m['first_step_s']:.0f} s |")
        print(f"| one epoch ({m['train_rows']:,} training rows) | {epoch:.0f} s ({m['train_rows'] / epoch:,.0f} rows/s) |")
        print(f"| peak RSS, training process | {m['train_peak_mib']:,.0f} MiB |")
        print(f"| peak RSS, largest decoding worker | {m['worker_peak_mib']:,.0f} MiB |")
        print(f"| test accuracy ({m['test_rows']:,} rows; majority {m['majority']:.3f}) | {m['test_accuracy']:.3f} |")
    if args.no_bulk:
        return
    out = folder / "preds.parquet"
    out.unlink(missing_ok=True)  # a whole job, not one resumed from an earlier call's parts
    shutil.rmtree(out.with_name(out.name + ".parts"), ignore_errors=True)
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "netwright", "predict", str(folder / "runs" / "big"), str(path),
                             "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, high_water_kib(proc.pid))
        time.sleep(0.2)
    if proc.returncode:
        raise SystemExit(f"bulk prediction failed: {proc.stderr.read().decode()[-2000:]}")
    seconds = time.perf_counter() - t
    print(f"| bulk prediction of every row | {seconds:.0f} s ({args.rows / seconds:,.0f} rows/s), peak RSS "
          f"{peak / 1024:,.0f} MiB |")


if __name__ == "__main__":
    main()
