"""Streamed against in-memory on data that fits in memory: the same Parquet table trained by the
same MLP twice, read whole (``stream: false``) and streamed by row groups (``stream: true``), in
alternation, repeated; prints the median training samples/s of each (``train.json``'s compute
block: the median epoch) and their ratio.

The table: scikit-learn's digits (1,797 rows, 64 pixel columns and the label), tiled ``--copies``
times so that an epoch is long enough to time, in row groups of ``--group`` rows.

    .venv/bin/python benchmarks/stream_overhead.py [--copies 20] [--repeats 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np


def write_digits(path: Path, copies: int, group: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = np.tile(d.data, (copies, 1)), np.tile(d.target, copies)
    cols = {f"p{i}": pa.array(x[:, i]) for i in range(x.shape[1])}
    pq.write_table(pa.table({**cols, "digit": pa.array(y.astype(str))}), path, row_group_size=group)


def main() -> None:
    import netwright

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--copies", type=int, default=20)
    p.add_argument("--group", type=int, default=4096)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    rates: dict[str, list[float]] = {"in memory": [], "streamed": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "digits.parquet"
        write_digits(path, args.copies, args.group)
        for r in range(args.repeats):
            for label, stream in (("in memory", False), ("streamed", True)):
                data = {"name": "parquet", "path": str(path), "target": "digit", "stream": stream}
                if stream:
                    data |= {"workers": args.workers}
                spec = {"data": data, "model": {"name": "mlp", "hidden": [256, 128], "dropout": 0.2},
                        "train": {"epochs": args.epochs, "batch_size": 64, "threads": 1,
                                  "optimizer": {"name": "adamw", "lr": 0.003}}, "seed": r}
                run = netwright.train(spec, name=f"{label.replace(' ', '_')}-{r}", runs_dir=tmp, progress="quiet")
                rates[label].append(run.read_json("train.json")["compute"]["samples_per_s"])
    mem, streamed = statistics.median(rates["in memory"]), statistics.median(rates["streamed"])
    print(f"digits x {args.copies} ({1797 * args.copies:,} rows), MLP [256, 128], batch 64, 1 thread; "
          f"streamed with {args.workers} workers")
    print("| path | training samples/s (median of epochs, median of runs) |")
    print("|---|---:|")
    print(f"| in memory | {mem:,.0f} |")
    print(f"| streamed | {streamed:,.0f} |")
    print(f"streamed / in memory = {streamed / mem:.2f}x   (runs: {rates})")


if __name__ == "__main__":
    main()
