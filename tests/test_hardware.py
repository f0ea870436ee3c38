"""Using the hardware: the precision ``auto`` picks, the compute report, the cached peak, doctor."""

from __future__ import annotations

import json

import pytest
import torch

import netwright
from netwright import build_model, load_dataset, load_spec
from netwright.hardware import native_bf16, peak_flops
from netwright.models.cost import forward_flops
from netwright.training.resources import BF16_MACS_PER_STEP, resolve_precision
from conftest import tiny_spec


def test_auto_precision_keeps_small_models_in_fp32_and_says_why():
    run = netwright.train(tiny_spec(), name="small", progress="quiet")
    summary = run.read_json("train.json")
    assert summary["precision"] == "fp32" and summary["precision_reason"].startswith("fp32: ")
    assert ("below" in summary["precision_reason"]) == native_bf16()


def test_auto_precision_takes_bf16_for_a_large_step_where_the_cpu_has_it():
    spec = load_spec({"data": {"name": "digits"}, "model": {"name": "mlp", "hidden": [4096, 4096]},
                      "train": {"batch_size": 256}})
    info = load_dataset(spec.data)
    model = build_model("mlp", info.info, hidden=[4096, 4096])
    x = info.train.x
    bf16, why = resolve_precision(spec.train, torch.device("cpu"), model, x, True)
    macs = 64 * 4096 + 4096 * 4096 + 4096 * 10  # per example, by hand
    assert macs * 256 >= BF16_MACS_PER_STEP
    assert bf16 == native_bf16() and why.startswith("bf16: " if bf16 else "fp32: this CPU has no native bf16")
    assert resolve_precision(spec.train, torch.device("cpu"), model, x, False) == (
        False, "fp32: this kind of model trains in full precision")
    fixed = spec.train.model_copy(update={"precision": "fp32"})
    assert resolve_precision(fixed, torch.device("cpu"), model, x, True) == (False, "train.precision: fp32")


def test_train_json_reports_training_flops_against_the_measured_peak():
    run = netwright.train(tiny_spec(epochs=4), name="flops", progress="quiet")
    summary = run.read_json("train.json")
    c = summary["compute"]
    # an MLP [16] on iris: 2 FLOPs per multiply-accumulate, (4*16 + 16*3) of them per example, forward
    assert forward_flops(run.load_model(), run.load_data().train.x) == 2 * (4 * 16 + 16 * 3)
    assert c["flops_per_example"] == 3 * 2 * (4 * 16 + 16 * 3)
    timing = [json.loads(line) for line in run.file("timing.jsonl").read_text().splitlines()]
    rates = sorted(t["samples_per_s"] for t in timing)
    assert c["samples_per_s"] == pytest.approx((rates[1] + rates[2]) / 2)  # the median of 4 epochs
    assert c["flop_per_s"] == pytest.approx(c["flops_per_example"] * c["samples_per_s"], rel=1e-6)
    peak = peak_flops("cpu", "fp32", summary["threads"])
    assert c["peak_flop_per_s"] == round(peak["flop_per_s"]) and c["fraction_of_peak"] == pytest.approx(
        c["flop_per_s"] / peak["flop_per_s"], rel=1e-3)
    assert peak_flops("cpu", "fp32", summary["threads"]) == peak  # cached: measured once


def test_doctor_names_what_a_bug_report_needs(cli):
    result = cli("doctor")
    assert result.code == 0, result.err
    for text in ("torch", "native bf16", "cpu flags", "GFLOP/s", "dataset-fashion-mnist", "mlflow"):
        assert text in result.out
