"""Compression of the demo CNN: size, latency and accuracy of every variant, in one run.

Trains ``examples/digits_cnn.yaml`` (or takes ``--run``), then ``netwright compress`` with
int8 quantization, 50% structured pruning (fine-tuned) and 50% unstructured sparsity.
Latency is the median over repeated calls at batch 1 and 64 with the same thread count for
PyTorch and ONNX Runtime. With ``--engines`` it also times int8 engines on an MLP
(ONNX Runtime dynamic int8 against torchao's int8 configs, if torchao is installed):
the measurement behind using ONNX Runtime for quantization.

    .venv/bin/python benchmarks/compress.py [--threads 2] [--engines]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

import netwright
from netwright.compress.measure import latency_ms

ROOT = Path(__file__).resolve().parents[1]


def table(result: dict) -> None:
    print(f"| variant | size KB | x smaller | parameters | MACs | ms @ batch 1 | ms @ batch 64 | x faster @ 64 "
          f"| test {result['metric']} | points |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, row in [("original (PyTorch fp32)", result["original"]), *result["variants"].items()]:
        vs = row["vs_original"]
        print(f"| {name} | {row['size_bytes'] / 1024:.1f} | {vs.get('size_ratio', 1):.2f} | {row['parameters']:,} "
              f"| {row['macs']:,} | {row['latency_ms']['1']:.3f} | {row['latency_ms']['64']:.3f} "
              f"| {vs['speedup_batch_64']:.2f} | {row['test_score']:.4f} | {vs['test_score_points']:+.2f} |")


def engines(runs: str, threads: int) -> None:
    """int8 engines on Linear layers: ONNX Runtime dynamic against torchao (eager)."""
    run = netwright.train({"data": {"name": "digits"}, "model": {"name": "mlp", "hidden": [512, 256]},
                           "train": {"epochs": 10}}, name="mlp", runs_dir=runs, progress="quiet")
    result = netwright.compress(run, threads=threads, progress="quiet")
    x = run.load_data().test.x
    rows = [("PyTorch fp32", result["original"]["latency_ms"]),
            ("ONNX Runtime fp32", result["variants"]["fp32-onnx"]["latency_ms"]),
            ("ONNX Runtime int8 (dynamic)", result["variants"]["int8"]["latency_ms"])]
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig, quantize_

        torch.set_num_threads(threads)
        for label, cfg in (("torchao int8 dynamic", Int8DynamicActivationInt8WeightConfig()),
                           ("torchao int8 weight-only", Int8WeightOnlyConfig())):
            model = run.load_model()
            quantize_(model, cfg)
            with torch.no_grad():
                rows.append((label, {"1": latency_ms(model, x[:1]), "64": latency_ms(model, x[:64])}))
    except ImportError:
        print("(torchao is not installed: its rows are left out)")
    print(f"\nint8 engines, MLP [512, 256] on digits, {threads} threads\n")
    print("| engine | ms @ batch 1 | ms @ batch 64 |")
    print("|---|---:|---:|")
    for label, lat in rows:
        print(f"| {label} | {lat['1']:.3f} | {lat['64']:.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", help="an existing run directory (default: train the demo spec)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--engines", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as runs:
        run = netwright.Run.open(args.run) if args.run else netwright.train(
            ROOT / "examples" / "digits_cnn.yaml", name="demo", runs_dir=runs, progress="quiet")
        result = netwright.compress(run, quantize="int8", prune=0.5, sparsity=0.5, threads=args.threads,
                                    progress="quiet")
        print(f"\ndigits CNN ({run.path.name}), torch {torch.__version__}, {result['threads']} threads for "
              "PyTorch and ONNX Runtime alike\n")
        table(result)
        if args.engines:
            engines(runs, result["threads"])


if __name__ == "__main__":
    main()
