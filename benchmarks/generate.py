"""Text generation with and without the key/value cache, side by side in one process.

Trains a language model (``examples/lm_pydoc.yaml``, or a quicker version with ``--epochs``)
unless ``--run`` names one, then generates the same tokens both ways from the same prompt and
seed, alternating the two for ``--repeats`` rounds, and reports the medians and their ratio.
The two texts must be identical (the cache changes the cost, not the result).

    .venv/bin/python benchmarks/generate.py [--run runs/lm_pydoc] [--tokens 100 300] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

import netwright
from netwright.run import Run
from netwright.tasks.language import load_tokenizer

ROOT = Path(__file__).resolve().parents[1]


def timed(model, prompt: torch.Tensor, tokens: int, cache: bool) -> tuple[float, list[int]]:
    t0 = time.perf_counter()
    out = model.generate(prompt, tokens, temperature=0.8, top_k=40, generator=torch.Generator().manual_seed(0),
                         use_cache=cache)
    return time.perf_counter() - t0, out[0].tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="a trained language-model run (default: train examples/lm_pydoc.yaml)")
    ap.add_argument("--epochs", type=int, default=2, help="epochs when training here")
    ap.add_argument("--tokens", type=int, nargs="+", default=[100, 300])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        run = Run.open(args.run) if args.run else netwright.train(
            ROOT / "examples" / "lm_pydoc.yaml", overrides=[f"train.epochs={args.epochs}"], name="lm", runs_dir=tmp,
            progress="quiet")
        model = run.load_model()
        prompt = torch.tensor([load_tokenizer(run).encode("The with statement")])
        print(f"{args.threads} thread(s), prompt of {prompt.shape[1]} tokens, context window {model.max_len}, "
              f"medians of {args.repeats}")
        print(f"{'tokens':>7} {'cache s':>9} {'no cache s':>11} {'speed-up':>9}  same text")
        for n in args.tokens:
            timed(model, prompt, 8, True)  # warm-up
            fast, slow, same = [], [], True
            for _ in range(args.repeats):
                t1, a = timed(model, prompt, n, True)
                t2, b = timed(model, prompt, n, False)
                fast.append(t1)
                slow.append(t2)
                same &= a == b
            f, s = statistics.median(fast), statistics.median(slow)
            print(f"{n:>7} {f:>9.3f} {s:>11.3f} {s / f:>8.2f}x  {same}")
            if not same:
                raise SystemExit("the cached and uncached texts differ")


if __name__ == "__main__":
    main()
