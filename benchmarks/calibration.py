"""Calibration and conformal prediction on the example classifiers and a regressor.

Trains each example spec (``--set`` overrides keep the long ones short), fits the temperature on
the validation split's temperature rows (``netwright.calibrate``; ``netwright.data.roles``), and
reports on the test split: accuracy, ECE, NLL and Brier before and after, and the split-conformal
coverage and set size (interval width) at 80, 90 and 95% targets, fitted on the conformal rows.
The NLL on the temperature rows after calibration is never above the one before (the search
keeps T = 1 unless it is beaten); the test numbers are the honest ones.

    .venv/bin/python benchmarks/calibration.py [--cases digits_mlp mnist1d_mlp ...]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import netwright

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "digits_mlp": ("digits_mlp.yaml", []),
    "digits_cnn": ("digits_cnn.yaml", []),
    "mnist1d_mlp": ("mnist1d_mlp.yaml", ["data.val=0.15"]),  # the published recipe has no validation split
    "mnist1d_cnn": ("mnist1d_cnn.yaml", ["data.val=0.15"]),
    "loans_fairness": ("loans_fairness.yaml", []),
    "fashion_cnn": ("fashion_cnn.yaml", ["train.epochs=2"]),
    "diabetes_mlp": (None, {"data": {"name": "diabetes"}, "model": {"name": "mlp", "hidden": [16]},
                            "train": {"epochs": 60, "optimizer": {"name": "adam", "lr": 0.01}}}),
}
TARGETS = (0.8, 0.9, 0.95)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="*", default=[c for c in CASES if c != "fashion_cnn"])
    args = ap.parse_args()
    cal_rows, conf_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases:
            spec, extra = CASES[name]
            source = ROOT / "examples" / spec if spec else extra
            run = netwright.train(source, overrides=extra if spec else None, name=name, runs_dir=tmp, progress="quiet")
            sizes = []
            for target in TARGETS:
                ev = netwright.evaluate(run, plots=False, coverage=target)
                c = ev["conformal"]
                sizes.append(f"{c['coverage']:.3f} / {c.get('mean_set_size', c.get('mean_width', float('nan'))):.3g}")
            conf_rows.append(f"| {name} | {ev['n']} | " + " | ".join(sizes) + " |")
            if run.info.task != "classification":
                continue
            fit = netwright.calibrate(run)
            ev = netwright.evaluate(run, plots=False)
            b, a = ev["calibration"]["before"], ev["calibration"]["after"]
            cal_rows.append(f"| {name} | {fit['temperature']:.3f} | {fit['val_nll_before']:.4f} -> "
                            f"{fit['val_nll_after']:.4f} | {ev['metrics']['accuracy']:.4f} | {b['ece']:.4f} -> "
                            f"{a['ece']:.4f} ({100 * (1 - a['ece'] / b['ece']):+.0f}%) | {b['nll']:.4f} -> "
                            f"{a['nll']:.4f} | {b['brier']:.4f} -> {a['brier']:.4f} |")
            print(cal_rows[-1], flush=True)
    print("\n| example | T | NLL on the temperature rows | test accuracy (unchanged) | test ECE (cut) | test NLL | test Brier |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(cal_rows))
    print("\n| example | test n | coverage / mean set size (width) at 0.8 | at 0.9 | at 0.95 |")
    print("|---|---:|---:|---:|---:|")
    print("\n".join(conf_rows))


if __name__ == "__main__":
    main()
