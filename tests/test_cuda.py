"""The GPU path (bf16 autocast, channels-last, pinned copies, torch.compile, NCCL). These tests
need a CUDA device and skip, saying so, on machines without one."""

from __future__ import annotations

import pytest
import torch

import netwright

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


def test_cuda_training_with_bf16_autocast_and_channels_last():
    spec = {"data": {"name": "digits"}, "model": {"name": "cnn"}, "train": {"epochs": 3, "device": "cuda"}}
    run = netwright.train(spec, name="cuda", progress="quiet")
    summary = run.read_json("train.json")
    assert summary["device"].startswith("cuda") and summary["precision"] == "bf16" and summary["channels_last"]
    assert netwright.evaluate(run, plots=False)["metrics"]["accuracy"] > 0.8


def test_cuda_compile():
    spec = {"data": {"name": "digits"}, "model": {"name": "mlp"}, "train": {"epochs": 2, "device": "cuda",
                                                                          "compile": True}}
    run = netwright.train(spec, name="compiled", progress="quiet")
    assert run.read_json("train.json")["compiled"]


def test_cuda_and_cpu_agree_in_fp32():
    spec = {"data": {"name": "iris"}, "model": {"name": "mlp"},
            "train": {"epochs": 3, "precision": "fp32", "optimizer": {"fused": False}}}
    cpu = netwright.train({**spec, "train": {**spec["train"], "device": "cpu"}}, name="cpu", progress="quiet")
    gpu = netwright.train({**spec, "train": {**spec["train"], "device": "cuda"}}, name="gpu", progress="quiet")
    a, b = cpu.metrics()[-1]["val_loss"], gpu.metrics()[-1]["val_loss"]
    assert a == pytest.approx(b, rel=1e-3)


def test_cuda_training_with_balanced_class_weights_and_a_fairness_penalty():
    """The class weights and the penalty's group terms are moved to the model's device (a weight
    left on the CPU meets CUDA logits and training stops: mutation survivors of
    ClassificationTask.loss/share and mitigation._spread that only a GPU can kill)."""
    spec = {"data": {"name": "biased", "gap": 0.15}, "model": {"name": "mlp", "hidden": [16]},
            "train": {"epochs": 2, "device": "cuda", "class_weight": "balanced"},
            "fairness": {"sensitive": ["group"], "positive_label": "approved", "mitigation": "penalty",
                         "penalty": {"constraint": "demographic_parity", "weight": 1.0}}}
    run = netwright.train(spec, name="cuda-fair", progress="quiet")
    assert run.read_json("train.json")["device"].startswith("cuda")
    assert run.metrics()[-1]["val_loss"] is not None
