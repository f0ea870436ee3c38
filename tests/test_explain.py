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


# ---- the sanity checks' arithmetic, on planted attributions (no training)

from scipy.stats import spearmanr  # noqa: E402

from netwright.data.info import DataInfo  # noqa: E402
from netwright.explain.sanity import _mask_positions, _positions, deletion_insertion, randomisation  # noqa: E402


def planted_info(modality: str, shape: tuple[int, ...]) -> DataInfo:
    return DataInfo(name="planted", task="classification", modality=modality, input_shape=shape, num_classes=2,
                    class_names=["a", "b"])


@pytest.mark.parametrize("modality,shape", [("image", (3, 2, 2)), ("sequence", (2, 5)), ("tabular", (6,))])
def test_a_position_is_every_channel_at_one_place(modality, shape):
    """Images and sequences: a position's importance is the sum over its channels, and deleting or
    inserting a position sets every channel there (from the baseline, or from the input); a table's
    position is its column. Checked element by element against loops written here."""
    info = planted_info(modality, shape)
    channels = shape[0] if modality != "tabular" else 1
    places = int(np.prod(shape)) // channels
    attr = torch.arange(2 * int(np.prod(shape)), dtype=torch.float64).reshape(2, *shape) ** 1.5
    flat = attr.reshape(2, channels, places)
    own = [[float(sum(flat[b, c, p] for c in range(channels))) for p in range(places)] for b in range(2)]
    assert _positions(attr, info).numpy() == pytest.approx(np.array(own))
    x, base = torch.full(shape, 7.0), torch.zeros(shape)
    order = np.random.default_rng(0).permutation(places)
    chosen = set(order[:2].tolist())
    for from_baseline in (False, True):
        got = _mask_positions(x, base, order, 2, info, from_baseline).reshape(channels, places)
        for c in range(channels):
            for p in range(places):
                assert got[c, p] == (7.0 if (p in chosen) == from_baseline else 0.0), (from_baseline, c, p)


def own_curve(model, x, base, order, target, insertion):
    """Area under the target probability, positions taken in ``order`` at 21 evenly spaced counts
    (trapezoids over the share of positions), one masked input at a time."""
    n = len(order)
    ks = sorted({int(k) for k in np.round(np.linspace(0, n, 21))})
    probs = []
    for k in ks:
        z = (base if insertion else x).clone()
        for j in order[:k]:
            z[j] = (x if insertion else base)[j]
        with torch.no_grad():
            probs.append(float(torch.softmax(model(z[None]).double(), 1)[0, target]))
    return sum((probs[i] + probs[i + 1]) / 2 * (ks[i + 1] - ks[i]) / n for i in range(len(ks) - 1))


def test_deletion_and_insertion_aucs_by_direct_computation():
    """A table of 40 columns, importances with many ties (three values): the attribution order is
    most important first, ties in column order; the random orders are the seed's permutations.
    Every AUC equals ``own_curve``; on this planted case the ordering beats random at deletion but
    not at insertion, so the check fails (both are needed), and a second call gives the same numbers."""
    info = planted_info("tabular", (40,))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(40, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2)).double().eval()
    g = torch.Generator().manual_seed(38)
    x = torch.randn(2, 40, generator=g, dtype=torch.float64) * 2
    attr = torch.randint(0, 3, (2, 40), generator=g).double()
    base, target = torch.zeros_like(x), torch.tensor([1, 1])
    got = deletion_insertion(model, x, attr, base, target, info)
    rng = np.random.default_rng(0)
    own = {"deletion_auc": [], "insertion_auc": [], "random_deletion_auc": [], "random_insertion_auc": []}
    for i in range(2):
        order = sorted(range(40), key=lambda j: -float(attr[i, j]))  # Python's sort is stable
        own["deletion_auc"].append(own_curve(model, x[i], base[i], order, 1, insertion=False))
        own["insertion_auc"].append(own_curve(model, x[i], base[i], order, 1, insertion=True))
        for _ in range(5):
            r = rng.permutation(40)
            own["random_deletion_auc"].append(own_curve(model, x[i], base[i], r, 1, insertion=False))
            own["random_insertion_auc"].append(own_curve(model, x[i], base[i], r, 1, insertion=True))
    own = {k: float(np.mean(v)) for k, v in own.items()}
    assert {k: got[k] for k in own} == pytest.approx(own, abs=1e-12)
    assert own["deletion_auc"] < own["random_deletion_auc"] and own["insertion_auc"] < own["random_insertion_auc"]
    assert got["passed"] is False
    assert deletion_insertion(model, x, attr, base, target, info) == got


class Scripted:
    """A method whose attributions after each randomisation step are planted."""

    def __init__(self, answers):
        self.answers = list(answers)

    def attribute(self, model, x, target, base, info):
        return self.answers.pop(0)


def test_randomisation_steps_by_direct_computation():
    """A three-layer MLP (layers '0' and '2' hold parameters): the steps go from the output layer
    down, each the mean over examples of Spearman's rho (scipy) between the original and the new
    |attributions| on the positions where the input differs from the baseline; an example left
    with fewer than 3 such positions, or whose original or new attributions there are all equal,
    counts 0. The check reads the last step (every layer randomised)."""
    info = planted_info("tabular", (6,))
    model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    x = torch.tensor([[1.0, 2, 3, 4, 5, 6],    # 6 positions kept
                      [1.0, 0, 0, 0, 2, 0],    # 2 kept: too few
                      [1.0, 1, 0, 0, 1, 0],    # exactly 3 kept
                      [2.0, 2, 2, 2, 2, 2],    # 6 kept, the original attributions all equal
                      [1.0, 2, 3, 4, 5, 6]])   # 6 kept
    base = torch.zeros_like(x)
    original = torch.tensor([[1.0, 2, 3, 4, 5, 6], [1, 9, 9, 9, 2, 9], [3, 1, 9, 9, 2, 9], [4, 4, 4, 4, 4, 4],
                             [6, 5, 4, 3, 2, 1]])
    after_2 = torch.tensor([[1.0, 2, 3, 4, 6, 5], [2, 0, 0, 0, 1, 0], [1, 2, 0, 0, 3, 0], [1, 2, 3, 4, 5, 6],
                            [6, 5, 4, 3, 1, 2]])
    after_0 = torch.tensor([[-6.0, 5, 4, 3, 2, 1], [1, 0, 0, 0, 2, 0], [2, 1, 0, 0, 3, 0], [1, 2, 3, 4, 5, 6],
                            [5, 5, 5, 5, 5, 5]])  # |-6| = 6: the magnitude is ranked
    target = torch.zeros(5, dtype=torch.long)
    got = randomisation(model, Scripted([after_2, after_0]), x, original, base, target, info)

    def rho(a, b, keep):
        return float(spearmanr(a[keep].abs(), b[keep].abs()).statistic)

    keep = [x[i] != 0 for i in range(5)]
    step_2 = [rho(original[0], after_2[0], keep[0]), 0.0, rho(original[2], after_2[2], keep[2]), 0.0,
              rho(original[4], after_2[4], keep[4])]
    step_0 = [rho(original[0], after_0[0], keep[0]), 0.0, rho(original[2], after_0[2], keep[2]), 0.0, 0.0]
    assert step_0[0] == pytest.approx(-1.0) and step_0[2] == pytest.approx(0.5) and step_2[2] == pytest.approx(-0.5)
    assert got["steps"] == [{"layer": "(none: the trained model)", "spearman": 1.0},
                            {"layer": "2", "spearman": pytest.approx(np.mean(step_2))},
                            {"layer": "0", "spearman": pytest.approx(np.mean(step_0))}]
    assert got["final"] == pytest.approx(abs(np.mean(step_0))) and got["passed"] == bool(abs(np.mean(step_0)) < 0.5)
    assert "after randomising every layer" in got["criterion"]
