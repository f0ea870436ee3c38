"""Temperature scaling: the fitted T against a brute-force grid, an overconfident classifier made
honest on unseen data (validation NLL never up, test ECE down, predictions unchanged), and the
places T is applied (predict, evaluate, ONNX export, the CLI, train.calibrate)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import netwright
from netwright.data.roles import role_rows
from netwright.calibration import brier_score, fit_temperature, nll, probabilities, served_temperature
from conftest import assert_one_line_error, tiny_spec

GRID = np.exp(np.linspace(np.log(0.05), np.log(20), 4001))  # log-spaced steps of 0.15%


def grid_minimum(logits: torch.Tensor, y: torch.Tensor) -> float:
    losses = [nll(logits, y, t) for t in GRID]
    return float(GRID[int(np.argmin(losses))])


@pytest.fixture(scope="module")
def overconfident(tmp_path_factory):
    """An MLP on digits trained for many epochs, last weights kept: sure of itself beyond its accuracy."""
    runs = tmp_path_factory.mktemp("runs")
    run = netwright.train({"data": {"name": "digits", "val": 0.25}, "model": {"name": "mlp", "hidden": [64]},
                           "train": {"epochs": 80, "threads": 1, "keep": "last",
                                     "optimizer": {"name": "adam", "lr": 0.01}}},
                          name="digits", runs_dir=runs, progress="quiet")
    before = netwright.evaluate(run, plots=False)
    return run, before, netwright.calibrate(run)


def test_fitted_temperature_is_the_grid_minimum_and_never_raises_nll():
    rng = np.random.default_rng(0)
    for scale in (0.3, 1.0, 4.0):  # under-, roughly and over-confident logits
        y = torch.from_numpy(rng.integers(0, 5, 400))
        signal = torch.nn.functional.one_hot(y, 5).double() * 2 + torch.from_numpy(rng.normal(size=(400, 5)))
        logits = signal * scale
        fit = fit_temperature(logits, y)
        assert fit["temperature"] == pytest.approx(grid_minimum(logits, y), rel=0.005)
        assert fit["nll_after"] <= fit["nll_before"] == pytest.approx(nll(logits, y, 1.0))
        assert fit["nll_after"] == pytest.approx(nll(logits, y, fit["temperature"]), abs=1e-12)


def test_temperature_scaling_makes_an_overconfident_classifier_honest(overconfident):
    run, before, cal = overconfident
    from netwright.tasks import run_task

    logits, y = run_task(run).val_outputs(run.load_model(), run.load_data(), "temperature", 0)
    t = cal["temperature"]
    assert t > 1.2  # overconfident: the logits are too large
    assert t == pytest.approx(grid_minimum(logits, y), rel=0.005)
    assert cal["val_nll_after"] <= cal["val_nll_before"]
    assert run.read_json("calibration.json") == cal
    after = netwright.evaluate(run, plots=False)
    c = after["calibration"]
    assert c["temperature"] == t
    assert c["after"]["ece"] < c["before"]["ece"] == pytest.approx(before["metrics"]["ece"])  # test ECE down
    assert c["after"]["nll"] < c["before"]["nll"]
    # the README's numbers, at the precision it prints them
    assert (round(t, 3), round(c["before"]["ece"], 4), round(c["after"]["ece"], 4), round(c["before"]["nll"], 3),
            round(c["after"]["nll"], 3)) == (1.338, 0.0280, 0.0215, 0.206, 0.167)
    assert after["metrics"]["accuracy"] == before["metrics"]["accuracy"]  # argmax unchanged
    # Brier score and ECE recomputed here with numpy from the test logits
    from netwright.tasks import collect_outputs

    out = collect_outputs(run.load_model(), run_task(run), run.load_data().test, 1024, torch.device("cpu"))
    test_logits, test_y = out["output"].double(), out["target"]
    p = np.exp(test_logits.numpy() / t)
    p /= p.sum(1, keepdims=True)
    assert c["after"]["brier"] == pytest.approx(((p - np.eye(10)[test_y.numpy()]) ** 2).sum(1).mean())
    conf, correct = p.max(1), p.argmax(1) == test_y.numpy()
    bins = np.minimum(np.ceil(conf * 15).astype(int) - 1, 14)  # bin b holds (b/15, (b+1)/15]
    ece = sum((bins == b).mean() * abs(correct[bins == b].mean() - conf[bins == b].mean())
              for b in range(15) if (bins == b).any())
    assert c["after"]["ece"] == pytest.approx(ece, abs=1e-9)


def test_predict_and_onnx_apply_the_temperature(overconfident, tmp_path):
    run, _, cal = overconfident
    from sklearn.datasets import load_digits

    from netwright.data.inputs import encode_inputs

    images = load_digits().images[:8]
    rows = netwright.predict(run, images)
    x = torch.from_numpy(encode_inputs(run.info, images))
    with torch.no_grad():
        logits = run.load_model()(x).double()
    expected = probabilities(logits, cal["temperature"])
    raw = torch.softmax(logits, 1).numpy()
    for row, p, q in zip(rows, expected, raw):
        assert list(row["probabilities"].values()) == pytest.approx(list(p), abs=1e-6)
        assert row["class"] == int(q.argmax())  # the same class as the uncalibrated model
    assert max(r["probabilities"][r["label"]] for r in rows) < raw.max(1).max()
    assert served_temperature(run) == cal["temperature"]
    pytest.importorskip("onnxruntime")
    result = netwright.export(run)
    assert result["passed"] and result["temperature"] == cal["temperature"]
    from netwright.deploy.onnx_io import onnx_session, run_session

    got = run_session(onnx_session(run.file("export") / "model.onnx"), x.numpy())
    assert got == pytest.approx(logits.numpy() / cal["temperature"], abs=1e-4)  # logits / T inside the graph
    assert served_temperature(run, run.file("export")) == 1.0  # a server reading the ONNX file divides no further


def test_conformal_sets_use_the_models_own_probabilities_on_a_calibrated_run(overconfident):
    """On a run calibrated with T ≈ 1.3 (away from 1), ``evaluate --coverage`` and ``predict
    --coverage`` fit the threshold on, and build the sets from, softmax(logits) (T = 1), as the
    README says: the threshold, the test coverage and mean set size, and every predicted set equal
    an APS computation written here with numpy from the raw logits (softmax; the mass of the classes
    strictly more likely; the ceil((n+1) x 0.99)-th smallest validation score). At 0.99 the
    threshold is above 0 (the top class alone is right on 98% of the validation split), so the
    temperature moves it: checked below, as is that temperature-scaled sets differ."""
    run, _, cal = overconfident
    t, coverage = cal["temperature"], 0.99
    from sklearn.datasets import load_digits

    from netwright.data.inputs import encode_inputs
    from netwright.tasks import collect_outputs, run_task

    def softmax(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def mass_before(p):  # (N, K): the mass of the classes strictly more likely than each class
        return (p[:, None, :] * (p[:, None, :] > p[:, :, None])).sum(2)

    model, data = run.load_model(), run.load_data()
    val_logits, val_y = (a.numpy() for a in run_task(run).val_outputs(model, data, "conformal", 0))
    out = collect_outputs(model, run_task(run), data.test, 1024, torch.device("cpu"))
    test_logits, test_y = out["output"].double().numpy(), out["target"].numpy()

    def threshold(temperature):
        scores = np.sort(mass_before(softmax(val_logits / temperature))[np.arange(len(val_y)), val_y])
        return float(scores[-(-(len(scores) + 1) * 99 // 100) - 1])  # ceil((n + 1) * 0.99)-th smallest

    q = threshold(1.0)
    keep = mass_before(softmax(test_logits)) <= q + 1e-12
    c = netwright.evaluate(run, plots=False, coverage=coverage)["conformal"]
    assert c["q"] == pytest.approx(q, abs=1e-9) and c["n"] == len(val_y)
    assert c["coverage"] == pytest.approx(keep[np.arange(len(test_y)), test_y].mean(), abs=1e-12)
    assert c["mean_set_size"] == pytest.approx(keep.sum(1).mean(), abs=1e-12)
    images = load_digits().images
    rows = netwright.predict(run, images, coverage=coverage)
    with torch.no_grad():
        logits = model(torch.from_numpy(encode_inputs(run.info, images))).double().numpy()
    names = run.info.class_names
    expected = [[names[j] for j in np.flatnonzero(k)] for k in mass_before(softmax(logits)) <= q + 1e-12]
    assert [row["set"] for row in rows] == expected
    # the planted temperature changes the answer, so this test tells the two apart
    assert abs(threshold(t) - q) > 1e-3, (threshold(t), q)
    scaled = mass_before(softmax(logits / t))
    assert ((scaled <= q) != (mass_before(softmax(logits)) <= q)).any(1).sum() >= 5
    assert (mass_before(softmax(test_logits / t)) <= q).sum(1).mean() != keep.sum(1).mean()


def test_brier_score_of_a_certain_classifier():
    assert brier_score(np.eye(3), [0, 1, 2]) == 0.0
    assert brier_score(np.full((2, 2), 0.5), [0, 1]) == pytest.approx(0.5)


def test_calibrate_cli_and_train_calibrate(cli, tmp_path):
    import json

    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(tiny_spec(calibrate=True)))
    assert cli("train", spec, "--name", "cal").code == 0
    run = netwright.Run.open("cal")
    cal = run.read_json("calibration.json")
    n_val = run.info.splits["val"]
    assert cal["n"] == len(role_rows(n_val, {"select": 1 / 3, "temperature": 1 / 3, "conformal": 1 / 3})["temperature"])
    assert cal["rows"] == "temperature" and cal["val_nll_after"] <= cal["val_nll_before"]
    r = cli("calibrate", "cal")
    assert r.code == 0 and f"temperature {cal['temperature']:.4f}" in r.out and "calibration.json" in r.out
    r = cli("evaluate", "cal", "--no-plots")
    assert r.code == 0 and f"temperature {cal['temperature']:.4f}: ece" in r.out


def test_calibrate_refuses_regressors_and_runs_without_a_validation_split(cli, tmp_path):
    import json

    reg = {"data": {"name": "diabetes"}, "model": {"name": "mlp", "hidden": [8]}, "train": {"epochs": 1, "threads": 1}}
    (tmp_path / "reg.json").write_text(json.dumps(reg))
    assert cli("train", tmp_path / "reg.json", "--name", "reg").code == 0
    assert_one_line_error(cli("calibrate", "reg"), "applies to classifiers", "--coverage")
    (tmp_path / "noval.json").write_text(json.dumps({**tiny_spec(epochs=1), "data": {"name": "iris", "val": 0}}))
    assert cli("train", tmp_path / "noval.json", "--name", "noval").code == 0
    assert_one_line_error(cli("calibrate", "noval"), "no validation split", "data.val")
    # train.calibrate is checked before any training
    assert_one_line_error(cli("train", tmp_path / "reg.json", "--name", "reg2", "--set", "train.calibrate=true"),
                          "train.calibrate", "drop train.calibrate")
    assert_one_line_error(cli("train", tmp_path / "noval.json", "--name", "nv2", "--set", "train.calibrate=true"),
                          "train.calibrate", "data.val")
    assert not (tmp_path / "runs" / "reg2").exists() and not (tmp_path / "runs" / "nv2").exists()


def test_a_perfectly_separated_validation_split_keeps_t_one():
    """Every validation example right with a margin: the NLL falls towards 0 as T -> 0, which
    says nothing about confidence on new data; T = 1 is kept, with a note."""
    y = torch.arange(30) % 3
    logits = torch.nn.functional.one_hot(y, 3).double() * 4.0
    fit = fit_temperature(logits, y)
    assert fit["temperature"] == 1.0 and "separated perfectly" in fit["note"]
    assert fit["nll_after"] == fit["nll_before"]


def test_the_server_applies_the_temperature_on_every_engine_and_route(overconfident):
    """Served probabilities equal run.predict's (PyTorch and ONNX Runtime), and the softmax of
    the v2 infer output equals /predict's, on a calibrated run."""
    from fastapi.testclient import TestClient

    from netwright.deploy.server import create_app

    run, _, cal = overconfident
    from sklearn.datasets import load_digits

    image = load_digits().images[0]
    expected = netwright.predict(run, image[None])[0]["probabilities"]
    x = run.load_data().split("test").x[:1].numpy()
    with torch.no_grad():
        logits = run.load_model()(torch.from_numpy(x)).double().numpy()
    body = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()}]}
    for engine in ("torch", "onnx"):
        client = TestClient(create_app(run, engine=engine, api_key=""))
        got = client.post("/predict", json={"pixels": image.tolist()}).json()["predictions"][0]["probabilities"]
        assert list(got.values()) == pytest.approx(list(expected.values()), abs=1e-5), engine
        out = np.array(client.post("/v2/models/digits/infer", json=body).json()["outputs"][0]["data"]).reshape(1, -1)
        assert probabilities(out)[0] == pytest.approx(probabilities(logits, cal["temperature"])[0], abs=1e-5), engine


def test_the_temperature_search_stops_at_its_bounds_0_01_and_100():
    """Logits that carry no information (labels drawn apart from them) want T -> infinity: the
    search ends at its upper bound 100. Logits 1,000 times too timid, with a few mistakes (so not
    separable), want T near 0.001: it ends at the lower bound 0.01. Each is the grid's best
    inside the bounds."""
    rng = np.random.default_rng(3)
    y = torch.from_numpy(rng.integers(0, 4, 600))
    noise = torch.from_numpy(rng.normal(size=(600, 4))) * 50
    hi = fit_temperature(noise, y)
    assert hi["temperature"] == pytest.approx(100.0, rel=1e-3)
    signal = torch.nn.functional.one_hot(y, 4).double() * 2 + torch.from_numpy(rng.normal(size=(600, 4)))
    lo = fit_temperature(signal / 1000, y)
    assert lo["temperature"] == pytest.approx(0.01, rel=1e-3) and "note" not in lo
    assert lo["nll_after"] < lo["nll_before"] and hi["nll_after"] < hi["nll_before"]


def test_logits_no_temperature_can_change_keep_t_one():
    """Logits equal within each row (a model that says nothing): softmax(z / T) is uniform for
    every T, so the NLL is log 4 wherever the search ends; it has nothing to beat and T = 1 is kept
    (not wherever the search stopped)."""
    import math

    rng = np.random.default_rng(5)
    logits = torch.from_numpy(np.repeat(rng.normal(size=(50, 1)), 4, axis=1))
    y = torch.from_numpy(rng.integers(0, 4, 50))
    fit = fit_temperature(logits, y)
    assert fit == {"temperature": 1.0, "nll_before": pytest.approx(math.log(4)), "nll_after": pytest.approx(math.log(4))}


def test_a_run_never_calibrated_divides_by_one(tmp_path):
    """No ``calibration.json``: the temperature a prediction or a server applies is 1 (the model's
    own probabilities)."""
    from netwright.calibration import temperature

    run = netwright.Run(tmp_path / "plain")
    assert temperature(run) == 1.0 and served_temperature(run) == 1.0


def test_probabilities_are_scipys_softmax_along_the_last_axis_for_logits_of_any_size():
    """Rows of very different sizes in one array (one in the thousands, one near 0, one far below
    0) each get scipy's softmax, finite; so does an array of three axes, along its last."""
    from scipy.special import softmax

    logits = np.array([[1000.0, 999.0, 0.0], [0.5, -0.5, 0.0], [-1000.0, -1001.0, -999.0]])
    for t in (1.0, 2.5):
        got = probabilities(logits, t)
        assert np.isfinite(got).all() and got == pytest.approx(softmax(logits / t, axis=1), abs=1e-15)
    assert probabilities(torch.from_numpy(logits)) == pytest.approx(softmax(logits, axis=1), abs=1e-15)
    cube = np.random.default_rng(0).normal(size=(2, 3, 4))
    assert probabilities(cube) == pytest.approx(softmax(cube, axis=-1), abs=1e-15)


def test_calibration_scores_take_numpy_or_torch_and_match_scikit_learn():
    from sklearn.metrics import log_loss

    from netwright.calibration import calibration_scores

    rng = np.random.default_rng(2)
    logits, y = rng.normal(0, 2, (300, 4)), rng.integers(0, 4, 300)
    for t in (1.0, 1.7):
        p = probabilities(logits, t)
        from_numpy = calibration_scores(logits, y, t)
        assert from_numpy == calibration_scores(torch.from_numpy(logits), torch.from_numpy(y), t)
        assert from_numpy["nll"] == pytest.approx(log_loss(y, p, labels=range(4)), rel=1e-9)
        assert from_numpy["brier"] == pytest.approx(((p - np.eye(4)[y]) ** 2).sum(1).mean(), rel=1e-12)


def test_a_calibrated_runs_scores_carry_both_temperatures_nll():
    """``scores`` of a classifier whose run has a temperature (here 2, read from its
    ``calibration.json``): a ``calibration`` entry naming the method and the temperature, with the
    NLL at T = 1 and at T = 2 (scikit-learn's log loss of each softmax)."""
    from scipy.special import softmax
    from sklearn.metrics import log_loss

    from netwright.data.info import DataInfo
    from netwright.run import CALIBRATION
    from netwright.tasks import task_class

    class Calibrated:  # the two things scores reads of a run
        def has(self, rel):
            return rel == CALIBRATION

        def read_json(self, rel):
            return {"temperature": 2.0}

    info = DataInfo(name="planted", task="classification", modality="tabular", input_shape=(2,), num_classes=3,
                    class_names=["x", "y", "z"])
    rng = np.random.default_rng(4)
    logits, y = torch.from_numpy(rng.normal(0, 3, (200, 3))), torch.from_numpy(rng.integers(0, 3, 200))
    c = task_class(info, "mlp")(info).scores(Calibrated(), {"output": logits, "target": y})["calibration"]
    assert set(c) == {"method", "temperature", "before", "after"} and c["temperature"] == 2.0
    assert "temperature scaling" in c["method"]
    for key, t in (("before", 1.0), ("after", 2.0)):
        assert c[key]["nll"] == pytest.approx(log_loss(y, softmax(logits.numpy() / t, 1), labels=range(3)))


def test_fitting_a_temperature_warns_about_nothing():
    """The search's options are ones scipy knows: a fit prints no warning (a calibrate run's output
    stays its one line)."""
    import warnings

    rng = np.random.default_rng(6)
    y = torch.from_numpy(rng.integers(0, 3, 200))
    logits = torch.nn.functional.one_hot(y, 3).double() * 3 + torch.from_numpy(rng.normal(size=(200, 3)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_temperature(logits, y)
