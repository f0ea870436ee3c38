"""Compression and ONNX export, checked against independent references: ONNX Runtime
against PyTorch, compressed models against the original."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import netwright
from netwright import NetwrightError
from netwright.compress import load_variant
from netwright.compress import compressor as compress_stage
from netwright.deploy.verify import verify
from netwright.tasks import run_task
from netwright.stages.export import export
from conftest import assert_one_line_error


@pytest.fixture(autouse=True)
def _quick_timing(monkeypatch):
    monkeypatch.setattr(compress_stage, "LATENCY_BUDGET_S", 0.02)


def train(name: str, data: str, model: dict, epochs: int = 1, **train_opts) -> netwright.Run:
    spec = {"data": {"name": data}, "model": model, "train": {"epochs": epochs, "threads": 1, **train_opts}}
    return netwright.train(spec, name=name, progress="quiet")


FAMILIES = [
    ("mlp", "digits", {"name": "mlp", "hidden": [32]}),
    ("cnn", "digits", {"name": "cnn", "channels": [8, 16], "hidden": [32]}),
    ("rnn", "mnist1d", {"name": "rnn", "cell": "gru", "hidden_size": 16}),
    ("lstm", "digits", {"name": "rnn", "cell": "lstm", "hidden_size": 16, "bidirectional": True}),
    ("transformer", "digits", {"name": "transformer", "d_model": 32, "heads": 2, "layers": 1, "ff_dim": 64}),
]


@pytest.mark.parametrize("name,data,model", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_fp32_export_matches_pytorch_for_every_family(name, data, model):
    run = train(name, data, model)
    result = export(run)
    assert result["passed"] and result["max_abs_diff"] <= 1e-4 and result["argmax_agreement"] == 1.0
    assert run.has("export/model.onnx") and run.read_json("export/verify.json")["passed"]
    # the batch axis is dynamic: one input and many give the same answers as PyTorch
    from netwright.deploy.onnx_io import onnx_session, run_session

    session = onnx_session(run.file("export/model.onnx"))
    x = run.load_data().test.x[:3]
    with torch.no_grad():
        expected = run.load_model()(x).numpy()
    assert np.abs(run_session(session, x[:1].numpy()) - expected[:1]).max() <= 1e-4
    if name == "rnn":  # a GRU that pools its last state takes sequences of any length
        assert result["variable_length_diff"] <= 1e-4


def test_int8_and_pruning_on_a_cnn():
    run = train("cnn", "digits", {"name": "cnn", "channels": [16, 32], "hidden": [64]}, epochs=6,
                optimizer={"name": "adam", "lr": 0.003})
    result = netwright.compress(run, quantize="int8", prune=0.5, sparsity=0.5, finetune_epochs=2, progress="quiet")
    original, variants = result["original"], result["variants"]
    assert set(variants) == {"int8", "fp32-onnx", "pruned-50", "pruned-50-int8", "pruned-50-onnx", "sparse-50"}
    int8 = variants["int8"]
    assert int8["vs_original"]["size_ratio"] > 2.5  # the demo CNN's >= 3.5x is checked end to end
    assert abs(int8["vs_original"]["test_score_points"]) <= 2.0
    assert run.read_json("compress/int8/variant.json")["method"] == "static"
    pruned = variants["pruned-50"]
    assert pruned["vs_original"]["macs_ratio"] >= 2.0 and pruned["parameters"] < original["parameters"] / 2
    # a pruned architecture is its configuration + safetensors: loaded again from its files, it scores
    # the test split exactly as the in-memory model did before it was saved (compress.json)
    from netwright.compress import measure

    v = load_variant(run, "pruned-50")
    assert v.meta["model"]["channels"] == [8, 16]
    data = run.load_data()
    assert measure.score(v.predict(data.test.x.numpy()), data.test, True) == pruned["test_score"]
    assert measure.score(v.predict(data.val.x.numpy()), data.val, True) == pruned["val_score"]
    assert not list(run.file("compress").rglob("*.pt*")) and not list(run.file("compress").rglob("*.pkl"))
    sparse = variants["sparse-50"]
    assert 0.45 <= 1 - sparse["nonzero_weights"] <= 0.55
    assert sparse["size_bytes"] == pytest.approx(original["size_bytes"], rel=0.01)  # zeros are stored too
    for row in [original, *variants.values()]:  # every ratio is the original's figure over the variant's
        assert set(row["latency_ms"]) == {"1", "64"}
        for n in ("1", "64"):
            assert row["vs_original"][f"speedup_batch_{n}"] == pytest.approx(  # stored to 3 decimals
                original["latency_ms"][n] / row["latency_ms"][n], rel=1e-3, abs=5e-4)
        assert row["vs_original"]["size_ratio"] == pytest.approx(original["size_bytes"] / row["size_bytes"], rel=1e-3,
                                                                abs=5e-4)
    assert result["threads"] >= 1
    for name in ("int8", "pruned-50"):
        assert export(run, variant=name)["passed"]


def test_dynamic_int8_for_a_recurrent_model():
    run = train("gru", "digits", {"name": "rnn", "cell": "gru", "hidden_size": 16, "hidden": [32]}, epochs=2)
    result = netwright.compress(run, progress="quiet")  # int8 is the default
    assert run.read_json("compress/int8/variant.json")["method"] == "dynamic"
    assert abs(result["variants"]["int8"]["vs_original"]["test_score_points"]) <= 2.0


def test_a_variant_larger_than_a_tiny_original_says_so(cli):
    """int8 of an 8-unit MLP: ONNX's framing outweighs the bytes it saves; the table says so."""
    run = train("tiny", "iris", {"name": "mlp", "hidden": [8]}, epochs=1)
    result = cli("compress", run.path, "--quiet")
    assert result.code == 0, result.err
    row = run.read_json("compress/compress.json")["variants"]["int8"]
    assert row["size_bytes"] > run.read_json("compress/compress.json")["original"]["size_bytes"]
    assert any(n.startswith("larger than the original") for n in row["vs_original"]["notes"])
    assert "int8: larger than the original" in result.out
    for n in ("1", "64"):
        lo, hi = row["latency_range_ms"][n]
        assert lo <= row["latency_ms"][n] <= hi


def test_budget_search_keeps_the_smallest_variant_within_budget():
    run = train("mlp", "digits", {"name": "mlp", "hidden": [64, 64]}, epochs=6, optimizer={"name": "adam", "lr": 0.003})
    result = netwright.compress(run, budget=5.0, finetune_epochs=2, progress="quiet")
    search = result["search"]
    names = {r["name"] for r in search["rows"]}
    assert {"pruned-25", "pruned-50", "pruned-75", "int8", "pruned-50-int8"} <= names
    within = [r for r in search["rows"] if r["within_budget"]]
    assert search["chosen"] == min(within, key=lambda r: r["size_bytes"])["name"]
    for r in search["rows"]:
        assert r["within_budget"] == (r["val_points"] >= -5.0)


def test_impossible_budget_says_so_and_keeps_the_original(cli):
    """Un-normalised wine: int8 activations lose the small-range features and pruning a 32-unit
    MLP without fine-tuning loses at least one of the 27 validation examples, so no variant keeps
    every point."""
    spec = {"data": {"name": "wine", "normalize": False}, "model": {"name": "mlp", "hidden": [32]},
            "train": {"epochs": 60, "threads": 1, "batch_size": 16, "optimizer": {"lr": 0.003}}}
    run = netwright.train(spec, name="wine", progress="quiet")
    before = run.file("model.safetensors").read_bytes()
    r = cli("compress", run.path, "--budget", "0", "--finetune-epochs", "0", "--quiet")
    assert_one_line_error(r, "no variant is within 0 points", "the original is kept")
    assert run.file("model.safetensors").read_bytes() == before
    search = run.read_json("compress/compress.json")["search"]
    assert search["chosen"] is None and all(not row["within_budget"] for row in search["rows"])


def test_bad_compress_and_export_input(cli, tmp_path: Path):
    run = train("gru", "mnist1d", {"name": "rnn", "cell": "gru", "hidden_size": 8})
    assert_one_line_error(cli("compress", run.path, "--prune", "0.5"), "structured pruning supports", "--sparsity")
    assert_one_line_error(cli("compress", run.path, "--quantize", "int4"), "only int8")
    assert_one_line_error(cli("export", run.path, "--variant", "nope"), "no variant 'nope'")
    assert_one_line_error(cli("export", run.path, "--format", "tflite"), "only onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    assert_one_line_error(cli("export", run.path, "--verify", bad), "not a valid ONNX model")
    with pytest.raises(NetwrightError, match="not a valid ONNX model"):
        verify(run, bad, run_task(run))
