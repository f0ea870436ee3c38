"""The digits GAN example's quality, as the README states it, with margins.

Trains ``examples/digits_gan.yaml`` as a user would (about 90 s on 2 quiet cores, three minutes on
a loaded one: too long for ``make test``, so it is checked here) and evaluates it on the test
split against 1,000 samples. Exit code 1 when a margin is missed:

- Frechet distance (the judge's feature space) < 8, below 5% of Gaussian noise's and 2% of an
  untrained generator's;
- all 10 digits drawn, each at least 6% of the samples;
- a requested class judged as that class at least 85% of the time.

    .venv/bin/python benchmarks/gan_quality.py [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import netwright

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=None, help="override the example's seed")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = netwright.train(ROOT / "examples" / "digits_gan.yaml", name="gan", runs_dir=tmp, progress="quiet",
                              overrides=[] if args.seed is None else [f"seed={args.seed}"])
        seconds = time.perf_counter() - t0
        m = netwright.evaluate(run)["metrics"]
    checks = [
        ("Frechet distance < 8", m["fid"] < 8, f"{m['fid']:.2f}"),
        ("< 5% of Gaussian noise's", m["fid"] < 0.05 * m["fid_gaussian_noise"], f"noise {m['fid_gaussian_noise']:.0f}"),
        ("< 2% of an untrained generator's", m["fid"] < 0.02 * m["fid_untrained_generator"],
         f"untrained {m['fid_untrained_generator']:.0f}"),
        ("all 10 digits drawn", m["modes"] == 10, str(m["modes"])),
        ("every digit >= 6% of the samples", m["min_class_share"] >= 0.06, f"lowest {m['min_class_share']:.1%}"),
        ("a requested class judged as itself >= 85%", m["conditional_accuracy"] >= 0.85,
         f"{m['conditional_accuracy']:.1%}"),
    ]
    print(f"examples/digits_gan.yaml: trained in {seconds:.0f} s")
    print("| check | measured | |\n|---|---:|---|")
    for what, ok, value in checks:
        print(f"| {what} | {value} | {'ok' if ok else 'MISSED'} |")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
