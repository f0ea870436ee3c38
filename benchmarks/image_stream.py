"""Streamed images against images held in memory, side by side in one run, alternating, repeated.

**Fashion CNN.** ``examples/fashion_cnn.yaml``'s network on Fashion-MNIST (the first ``--subset``
training images and the published test images), read as one array (``stream: false``) and
through the streamed pipeline (``stream: true``: blocks of a seeded order, decoded as needed and
kept).

**A folder of PNG files of mixed sizes.** All 60,000 Fashion-MNIST training images written once as
PNG files, one sub-folder per class, each stretched to a random size between 20 and 40 pixels a
side, read back at ``image_size: [28, 28]``: decoded whole before the first step (``stream:
false``, ``--workers`` processes) or streamed (``stream: true``, the same workers decoding blocks
ahead of training; the blocks are kept, the set fits in memory). A small CNN, so that the input
pipeline, not the network, is what is timed.

For each: the time from ``netwright.train`` to its first step, the samples/s of the first epoch
(the stream decodes it) and the median samples/s of the later ones, medians over the repeats, and
streamed / in memory.

    .venv/bin/python benchmarks/image_stream.py [--repeats 3] [--epochs 3] [--subset 12000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _write_class(job: tuple[str, np.ndarray, int]) -> None:
    from PIL import Image

    folder, images, seed = job
    rng = np.random.default_rng(seed)
    Path(folder).mkdir(parents=True, exist_ok=True)
    for i, a in enumerate(images):
        w, h = (int(v) for v in rng.integers(20, 41, size=2))
        Image.fromarray(a).resize((w, h)).save(f"{folder}/{i:05d}.png")


def write_png_folder(root: Path, workers: int) -> int:
    """Fashion-MNIST's 60,000 training images as PNG files of mixed sizes under ``root/<class>/``."""
    from netwright.data.fashion import FASHION_CLASSES, fashion_arrays

    x, y = fashion_arrays()["train"]
    jobs = [(str(root / name.replace("/", "-")), x[y == c], c) for c, name in enumerate(FASHION_CLASSES)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write_class, jobs))
    return len(x)


def train(spec: dict, name: str, runs: str) -> dict:
    """One run: seconds to the first step and each epoch's samples/s."""
    import netwright
    from netwright.training.callbacks import Callback

    marks: dict[str, float] = {}
    t0 = time.perf_counter()

    class Clock(Callback):
        def on_train_start(self, run, state):
            marks["first_step_s"] = time.perf_counter() - t0

    run = netwright.train(spec, name=name, runs_dir=runs, overwrite=True, progress="quiet", callbacks=[Clock()])
    timing = [json.loads(line) for line in run.file("timing.jsonl").read_text().splitlines()]
    rates = [t["samples_per_s"] for t in timing]
    return {"first_step_s": marks["first_step_s"], "first_epoch": rates[0],
            "later_epochs": statistics.median(rates[1:]) if len(rates) > 1 else rates[0],
            "val_accuracy": json.loads(run.file("metrics.jsonl").read_text().splitlines()[-1])["val_accuracy"]}


def table(title: str, results: dict[str, list[dict]]) -> None:
    med = {k: {m: statistics.median(r[m] for r in rs) for m in rs[0]} for k, rs in results.items()}
    mem, streamed = med["in memory"], med["streamed"]
    print(f"\n{title}")
    print("| path | time to first step | first epoch samples/s | later epochs samples/s | val accuracy |")
    print("|---|---:|---:|---:|---:|")
    for k, m in med.items():
        print(f"| {k} | {m['first_step_s']:.1f} s | {m['first_epoch']:,.0f} | {m['later_epochs']:,.0f} | "
              f"{m['val_accuracy']:.4f} |")
    print(f"streamed / in memory: first epoch {streamed['first_epoch'] / mem['first_epoch']:.2f}x, later epochs "
          f"{streamed['later_epochs'] / mem['later_epochs']:.2f}x, time to first step "
          f"{streamed['first_step_s']:.1f} s against {mem['first_step_s']:.1f} s")
    print(f"(every run: {json.dumps(results)})", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--subset", type=int, default=12000, help="Fashion CNN: training images (of 60,000)")
    p.add_argument("--workers", type=int, default=2, help="decoding processes")
    p.add_argument("--skip-fashion", action="store_true")
    p.add_argument("--skip-folder", action="store_true")
    p.add_argument("--folder", type=Path, help="write the PNG folder here (kept) or reuse it; default: a temporary one")
    args = p.parse_args()
    example = yaml.safe_load((ROOT / "examples" / "fashion_cnn.yaml").read_text())
    train_opts = {**example["train"], "epochs": args.epochs, "threads": 2}
    with tempfile.TemporaryDirectory() as tmp:
        runs = str(Path(tmp) / "runs")
        if not args.skip_fashion:
            results: dict[str, list[dict]] = {"in memory": [], "streamed": []}
            for r in range(args.repeats):
                for label, stream in (("in memory", False), ("streamed", True)):
                    spec = {"data": {"name": "fashion_mnist", "subset": args.subset, "stream": stream, "val": 0.1},
                            "model": example["model"], "train": train_opts, "seed": r}
                    results[label].append(train(spec, f"fashion-{stream}-{r}", runs))
            table(f"Fashion CNN (examples/fashion_cnn.yaml's network, {args.subset:,} training images, batch "
                  f"{train_opts['batch_size']}, {args.epochs} epochs, 2 threads)", results)
        if not args.skip_folder:
            folder = args.folder or Path(tmp) / "fashion-png"
            if folder.is_dir():
                n = sum(1 for _ in folder.glob("*/*.png"))
            else:
                t0 = time.perf_counter()
                n = write_png_folder(folder, args.workers)
                print(f"\nwrote {n:,} PNG files of 20-40 px a side in {time.perf_counter() - t0:.0f} s", flush=True)
            results = {"in memory": [], "streamed": []}
            for r in range(args.repeats):
                for label, stream in (("in memory", False), ("streamed", True)):
                    spec = {"data": {"name": "images", "path": str(folder), "image_size": [28, 28], "stream": stream,
                                     "workers": args.workers, "val": 0.1, "test": 0.1},
                            "model": {"name": "cnn", "channels": [8, 16], "hidden": [32]},
                            "train": {"epochs": args.epochs, "batch_size": 128, "threads": 2,
                                      "optimizer": {"name": "adamw", "lr": 0.003}}, "seed": r}
                    results[label].append(train(spec, f"folder-{stream}-{r}", runs))
            table(f"{n:,} PNG files of mixed sizes at image_size [28, 28], CNN [8, 16], batch 128, {args.epochs} "
                  f"epochs, 2 threads, {args.workers} decoding processes", results)


if __name__ == "__main__":
    main()
