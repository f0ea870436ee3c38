"""Time to accuracy: the speedrun recipes against the current examples, and against a plain
PyTorch script of the same recipe, over several seeds in one run.

For each pair (``examples/fashion_speedrun.yaml`` beside ``examples/fashion_cnn.yaml``, and the
same for MNIST-1D and digits) and each seed, the whole ``netwright train`` process is timed
(start-up, data loading and the writing of the run included), then ``netwright evaluate`` reads
the test accuracy. The plain script (``--plain SPEC SEED``, run as its own process too) loads the
same data and builds the same model with netwright's loaders and builders, then trains with a
hand-written loop of the recipe for as many epochs as the recipe's run trained (its ``budget_s``
sets them): the optimizer, the one-cycle schedule, label smoothing, flips and shifts (a shift per
batch), the weights' moving average and flip and shift test-time augmentation where the spec asks
for them; so the trainer's share of the time is visible. Runs alternate (recipe, example, plain) within a
seed so that machine noise hits all three. Prints mean +- sd test accuracy, the median wall time
and the lowest accuracy of each.

    .venv/bin/python benchmarks/speedrun.py [--seeds 5] [--only fashion mnist1d digits] [--no-plain]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAIRS = {"fashion": ("fashion_speedrun.yaml", "fashion_cnn.yaml"),
         "mnist1d": ("mnist1d_speedrun.yaml", "mnist1d_cnn.yaml"),
         "digits": ("digits_speedrun.yaml", "digits_cnn.yaml")}


def netwright(*args: str, cwd: Path) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "netwright", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"netwright {' '.join(args)}: {r.stderr.strip()[-400:]}")
    return time.perf_counter() - t0


def run_netwright(spec: Path, seed: int, folder: Path, name: str) -> tuple[float, float, float, int]:
    """(wall seconds of the train process, test accuracy, seconds of training, epochs trained)."""
    seconds = netwright("train", str(spec), "--name", name, "--runs-dir", str(folder), "--set", f"seed={seed}",
                        "--set", "train.checkpoint_interval=0", "-q", "--overwrite", cwd=folder)
    netwright("evaluate", str(folder / name), cwd=folder)
    summary = json.loads((folder / name / "train.json").read_text())
    return (seconds, json.loads((folder / name / "eval.json").read_text())["metrics"]["accuracy"],
            summary["seconds"], summary.get("epochs_planned", summary["epochs"]))


def run_plain(spec: Path, seed: int, epochs: int) -> tuple[float, float, float, int]:
    """As :func:`run_netwright`, for the plain loop trained for ``epochs`` (the recipe's run's, whose
    budget_s set them)."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, __file__, "--plain", str(spec), str(seed), str(epochs)], capture_output=True,
                       text=True)
    if r.returncode:
        raise SystemExit(f"plain {spec.name}: {r.stderr.strip()[-400:]}")
    accuracy, seconds = map(float, r.stdout.split())
    return time.perf_counter() - t0, accuracy, seconds, epochs


def plain(spec_path: str, seed: int, epochs: int) -> tuple[float, float]:
    """The recipe by hand for ``epochs``: (test accuracy, seconds of training)."""
    import torch
    import torch.nn.functional as F
    import yaml

    from netwright.data import load_dataset
    from netwright.models import build_model
    from netwright.spec import load_spec

    raw = yaml.safe_load(Path(spec_path).read_text())
    raw["seed"] = seed
    spec = load_spec(raw)
    tr = spec.train
    torch.set_num_threads(tr.threads if isinstance(tr.threads, int) else min(2, torch.get_num_threads()))
    data = load_dataset(spec.data)
    torch.manual_seed(seed)
    model = build_model(spec.model.name, data.info, **spec.model.params)
    o = tr.optimizer
    if o.name == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
                              weight_decay=o.weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    x, y = data.train.x, data.train.y
    n, bs = len(y), tr.batch_size
    steps = math.ceil(n / bs) * epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=o.lr, total_steps=steps) \
        if tr.schedule.name == "onecycle" else None
    ema = copy.deepcopy(model) if tr.ema else None
    shift = int(tr.augment.shift)
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n)
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            xb, yb = x[idx], y[idx]
            if tr.augment.flip:
                flip = torch.rand(len(xb)) < 0.5
                xb = torch.where(flip.view(-1, *[1] * (xb.dim() - 1)), xb.flip(-1), xb)
            if shift:
                s = int(torch.randint(-shift, shift + 1, ()))
                xb = torch.roll(xb, s, -1)
            with torch.autocast("cpu", torch.bfloat16, enabled=tr.precision == "bf16"):
                loss = F.cross_entropy(model(xb), yb, label_smoothing=tr.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched:
                sched.step()
            if ema is not None:
                with torch.no_grad():
                    for a, w in zip(ema.state_dict().values(), model.state_dict().values()):
                        a.lerp_(w, 1 - tr.ema) if a.is_floating_point() else a.copy_(w)
    seconds = time.perf_counter() - t0
    final = (ema or model).eval()
    xt, yt = data.test.x, data.test.y
    zero = torch.zeros_like(xt[..., :1])
    views = [xt] + ([xt.flip(-1)] if "flip" in tr.tta else []) + (
        [torch.cat([zero, xt[..., :-1]], -1), torch.cat([xt[..., 1:], zero], -1)] if "shift" in tr.tta else [])
    with torch.no_grad():
        logits = torch.stack([torch.cat([final(v[i:i + 1024]) for i in range(0, len(v), 1024)]) for v in views]).mean(0)
    return float((logits.argmax(1) == yt).float().mean()), seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--only", nargs="*", choices=sorted(PAIRS))
    ap.add_argument("--no-plain", action="store_true", help="leave out the plain PyTorch script")
    ap.add_argument("--plain", nargs=3, metavar=("SPEC", "SEED", "EPOCHS"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.plain:
        print(*plain(a.plain[0], int(a.plain[1]), int(a.plain[2])))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for pair in a.only or PAIRS:
            recipe, example = (ROOT / "examples" / f for f in PAIRS[pair])
            got: dict[str, list[tuple[float, float, float, int]]] = {recipe.name: [], example.name: []}
            if not a.no_plain:
                got[f"plain PyTorch, {recipe.name}"] = []
            for seed in range(a.seeds):
                got[recipe.name].append(run_netwright(recipe, seed, folder, f"{pair}-recipe"))
                got[example.name].append(run_netwright(example, seed, folder, f"{pair}-example"))
                if not a.no_plain:
                    got[f"plain PyTorch, {recipe.name}"].append(run_plain(recipe, seed, got[recipe.name][-1][3]))
                print(f"{pair} seed {seed}: " + "; ".join(f"{k} {v[-1][1]:.4f} in {v[-1][0]:.1f} s ({v[-1][2]:.1f} s "
                                                          f"training, {v[-1][3]} epochs)" for k, v in got.items()),
                      flush=True)
            for k, v in got.items():
                acc = [x[1] for x in v]
                rows.append((pair, k, statistics.fmean(acc), statistics.stdev(acc) if len(acc) > 1 else 0.0,
                             min(acc), statistics.median(x[0] for x in v), statistics.median(x[2] for x in v)))
    print(f"\n| data | run | test accuracy (mean ± sd over {a.seeds} seeds) | lowest | whole process, median (s) "
          "| training, median (s) |")
    print("|---|---|---:|---:|---:|---:|")
    for pair, k, mean, sd, low, wall, train in rows:
        print(f"| {pair} | {k} | {100 * mean:.2f} ± {100 * sd:.2f} | {100 * low:.2f} | {wall:.1f} | {train:.2f} |")


if __name__ == "__main__":
    main()
