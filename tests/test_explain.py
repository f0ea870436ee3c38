"""Explanations: every family and method (shapes, finiteness), a planted signal that every
method must find, Integrated Gradients' completeness, the sanity checks, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import netwright
from netwright import NetwrightError, build_model
from netwright.explain import METHODS, applicable
from netwright.explain.methods import baseline_for
from conftest import assert_one_line_error
from test_models import INFOS, example_batch


@pytest.mark.parametrize("modality", list(INFOS))
@pytest.mark.parametrize("family", ["mlp", "cnn", "rnn", "transformer"])
def test_every_family_with_every_applicable_method(family, modality):
    info = INFOS[modality]
    torch.manual_seed(0)
    model = build_model(family, info).eval()
    x = example_batch(info, 2)
    target = torch.zeros(2, dtype=torch.long)
    names = applicable(model, info)
    assert "saliency" in names and "integrated_gradients" in names and "occlusion" in names
    assert ("gradcam" in names) == (family == "cnn")
    assert ("attention_rollout" in names) == (family == "transformer")
    assert ("feature_ablation" in names) == (modality == "tabular")
    for name in names:
        a = METHODS[name].attribute(model, x, target, baseline_for(info, x), info)
        expected = tuple(x.shape) if modality != "tokens" else (2, info.input_shape[0])
        assert tuple(a.shape) == expected, name
        assert torch.isfinite(a).all(), name


def planted_csv(path: Path, k: int = 3, n: int = 800, f: int = 6) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, f))
    y = (x[:, k] > 0).astype(int)
    rows = [",".join(f"f{i}" for i in range(f)) + ",label"]
    rows += [",".join(f"{v:.4f}" for v in xi) + f",{yi}" for xi, yi in zip(x, y)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("family", ["mlp", "transformer"])
def test_every_method_finds_a_planted_signal(tmp_path: Path, family):
    """Only feature f3 decides the label: every method must rank it first."""
    spec = {"data": {"name": "csv", "path": str(planted_csv(tmp_path / "planted.csv")), "target": "label"},
            "model": {"name": family}, "train": {"epochs": 15, "threads": 1, "optimizer": {"lr": 0.01}}}
    run = netwright.train(spec, name=family, progress="quiet")
    assert netwright.evaluate(run, plots=False)["metrics"]["accuracy"] > 0.9
    result = netwright.explain(run, samples=16, sanity=False)
    assert set(result["methods"]) >= {"saliency", "integrated_gradients", "smoothgrad", "occlusion",
                                      "feature_ablation", "permutation"}
    for method in result["methods"]:  # per-example attributions
        a = np.abs(np.load(run.file(f"explain/{method}.npy")))
        assert a.mean(0).argmax() == 3, (method, a.mean(0))
    for method, importance in result["global"].items():  # the global view over the test split
        assert max(importance, key=importance.get) == "f3", method
    assert run.has("explain/features.png") and run.has("explain/global.png")


@pytest.fixture(scope="module")
def digits_cnn(tmp_path_factory):
    spec = {"data": {"name": "digits"}, "model": {"name": "cnn", "channels": [16, 32], "hidden": [64]},
            "train": {"epochs": 8, "threads": 1, "optimizer": {"lr": 0.003}}}
    return netwright.train(spec, name="cnn", runs_dir=tmp_path_factory.mktemp("runs"), progress="quiet")


def test_explain_a_cnn_writes_attributions_pictures_and_checks(digits_cnn):
    result = netwright.explain(digits_cnn, samples=4)
    assert result["methods"] == ["saliency", "integrated_gradients", "smoothgrad", "gradcam", "occlusion"]
    for method in result["methods"]:
        a = np.load(digits_cnn.file(f"explain/{method}.npy"))
        assert a.shape == (4, 1, 8, 8) and np.isfinite(a).all()
        checks = result["sanity"][method]
        assert len(checks["randomisation"]["steps"]) == 1 + sum(  # the trained model, then one step a layer
            1 for m in digits_cnn.load_model().modules() if any(True for _ in m.parameters(recurse=False)))
        assert {"deletion_auc", "insertion_auc", "random_deletion_auc", "random_insertion_auc"} <= set(checks["deletion_insertion"])
        for check, res in checks.items():  # a failed check is flagged, not hidden
            assert (not res["passed"]) == any(f["method"] == method and f["check"] == check for f in result["flagged"])
    assert result["completeness"]["mean_relative_gap"] < 0.01
    assert digits_cnn.has("explain/overlay.png") and digits_cnn.read_json("explain/explain.json") == result


def test_the_checks_fail_attributions_known_to_be_bad(digits_cnn):
    """Attributions that ignore the model (an 'edge detector': the input's own magnitude) fail the
    randomisation check; attributions ranked backwards (least important first) fail deletion and
    insertion; saliency passes both on the same inputs."""
    from netwright.explain.methods import Method, any_model
    from netwright.explain.sanity import deletion_insertion, randomisation

    model, info = digits_cnn.load_model().eval(), digits_cnn.info
    x = digits_cnn.load_data().test.x[:8]
    base = baseline_for(info, x)
    with torch.no_grad():
        target = model(x).argmax(1)
    edges = Method("edges", "the input's magnitude", any_model, lambda m, x, t, b, i: (x - b).abs())
    ig = METHODS["integrated_gradients"]
    backwards = -ig.attribute(model, x, target, base, info).abs()
    assert not randomisation(model, edges, x, edges.attribute(model, x, target, base, info), base, target, info)["passed"]
    assert not deletion_insertion(model, x, backwards, base, target, info)["passed"]
    good = METHODS["saliency"]
    attr = good.attribute(model, x, target, base, info)
    assert randomisation(model, good, x, attr, base, target, info)["passed"]
    assert deletion_insertion(model, x, attr, base, target, info)["passed"]


def test_completeness_holds_by_direct_computation(digits_cnn):
    """Integrated Gradients: sum of attributions = f(x) - f(baseline), checked without Captum's delta."""
    from netwright.explain.methods import integrated_gradients

    model, info = digits_cnn.load_model(), digits_cnn.info
    x = digits_cnn.load_data().test.x[:5]
    t = model(x).argmax(1)
    base = baseline_for(info, x)
    a = integrated_gradients(model, x, t, base, info)
    with torch.no_grad():
        diff = model(x).gather(1, t[:, None])[:, 0] - model(base).gather(1, t[:, None])[:, 0]
    gap = (a.sum((1, 2, 3)) - diff).abs() / diff.abs()
    assert float(gap.max()) < 0.01


def test_explain_sequences_and_text(tmp_path: Path):
    seq = netwright.train({"data": {"name": "mnist1d"}, "model": {"name": "rnn", "hidden_size": 16},
                           "train": {"epochs": 1, "threads": 1}}, name="seq", progress="quiet")
    r = netwright.explain(seq, samples=2, sanity=False)
    assert seq.has("explain/sequences.png") and "gradcam" not in r["methods"]
    (tmp_path / "t.txt").write_text("the quick brown fox jumps over the lazy dog. " * 10)
    txt = netwright.train({"data": {"name": "text", "path": str(tmp_path / "t.txt"), "seq_len": 12},
                           "model": {"name": "transformer", "d_model": 16, "heads": 2, "layers": 1},
                           "train": {"epochs": 1, "threads": 1}}, name="txt", progress="quiet")
    r = netwright.explain(txt, samples=2)
    assert np.load(txt.file("explain/integrated_gradients.npy")).shape == (2, 12)
    assert "attention_rollout" in r["methods"] and txt.has("explain/tokens.png")


def test_bad_explain_input(cli, digits_cnn, tmp_path: Path):
    mlp = netwright.train({"data": {"name": "digits"}, "model": {"name": "mlp", "hidden": [8]},
                           "train": {"epochs": 1, "threads": 1}}, name="mlp", progress="quiet")
    assert_one_line_error(cli("explain", mlp.path, "--method", "gradcam"), "Grad-CAM needs a convolutional model")
    assert_one_line_error(cli("explain", mlp.path, "--index", "5000"), "sample index 5000 is out of range")
    np.save(tmp_path / "wrong.npy", np.zeros((2, 5)))
    assert_one_line_error(cli("explain", mlp.path, "--input", tmp_path / "wrong.npy"), "must have shape (1, 8, 8)")
    assert_one_line_error(cli("explain", mlp.path, "--method", "shap"), "unknown method 'shap'")
    with pytest.raises(NetwrightError, match="permutation needs at least 2 samples"):
        netwright.explain(netwright.train({"data": {"name": "iris"}, "model": {"name": "mlp"},
                                           "train": {"epochs": 1, "threads": 1}}, name="iris", progress="quiet"),
                          methods=["permutation"], samples=1, sanity=False)
