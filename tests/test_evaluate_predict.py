from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn import metrics as skm
from sklearn.datasets import load_digits, load_iris

import netwright
from netwright import DataError, load_dataset
from conftest import tiny_spec


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return netwright.train(tiny_spec(epochs=20, optimizer={"name": "adam", "lr": 0.02}), name="iris",
                           runs_dir=runs, progress="quiet")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    spec = {"data": {"name": "digits"}, "model": {"name": "cnn", "channels": [8, 16]},
            "train": {"epochs": 2, "threads": 1}}
    return netwright.train(spec, name="digits", runs_dir=runs, progress="quiet")


def test_eval_json_matches_sklearn_on_the_same_predictions(iris_run):
    result = netwright.evaluate(iris_run)
    data = load_dataset(iris_run.spec.data)
    model = iris_run.load_model()
    with torch.no_grad():
        probs = torch.softmax(model(data.test.x).double(), 1).numpy()
    y, pred = data.test.y.numpy(), probs.argmax(1)
    m = result["metrics"]
    assert result["n"] == len(y) == iris_run.info.splits["test"]
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["loss"] == pytest.approx(skm.log_loss(y, probs, labels=[0, 1, 2]), rel=1e-6)
    assert np.array_equal(result["confusion_matrix"], skm.confusion_matrix(y, pred, labels=[0, 1, 2]))
    # ECE over 15 equal-width confidence bins, computed here with numpy from the same probabilities
    conf, correct = probs.max(1), pred == y
    bins = np.minimum(np.ceil(conf * 15).astype(int) - 1, 14)  # bin b holds (b/15, (b+1)/15]
    direct = sum((bins == b).mean() * abs(correct[bins == b].mean() - conf[bins == b].mean())
                 for b in range(15) if (bins == b).any())
    assert m["ece"] == pytest.approx(direct, abs=1e-6) and len(result["per_class"]) == 3
    for pic in ("confusion.png", "reliability.png", "curves.png"):
        assert iris_run.has(f"eval/{pic}")
    assert iris_run.read_json("eval.json") == result


def test_predict_applies_the_saved_preprocessing(iris_run, tmp_path: Path):
    iris = load_iris()
    rows = iris.data[:5]
    header = ",".join(iris.feature_names)
    (tmp_path / "in.csv").write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    np.save(tmp_path / "in.npy", rows)
    from_csv = netwright.predict(iris_run, tmp_path / "in.csv")
    from_npy = netwright.predict(iris_run, tmp_path / "in.npy")
    from_table = netwright.predict(iris_run, {n: rows[:, i] for i, n in enumerate(iris.feature_names)})
    assert from_csv == from_npy == from_table
    assert [p["label"] for p in from_csv] == ["setosa"] * 5  # the first iris rows are setosa
    assert all(sum(p["probabilities"].values()) == pytest.approx(1, abs=1e-5) for p in from_csv)


def test_predict_rejects_inputs_that_do_not_fit(iris_run, tmp_path: Path):
    (tmp_path / "missing.csv").write_text("sepal length (cm),petal width (cm)\n1,2\n")
    with pytest.raises(DataError, match="missing column 'sepal width \\(cm\\)'"):
        netwright.predict(iris_run, tmp_path / "missing.csv")
    np.save(tmp_path / "wide.npy", np.zeros((2, 5)))
    with pytest.raises(DataError, match=r"each input must have shape \(4,\)"):
        netwright.predict(iris_run, tmp_path / "wide.npy")
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan, 1.0, 1.0]]))
    with pytest.raises(DataError, match="holds nan"):
        netwright.predict(iris_run, tmp_path / "nan.npy")


def test_predict_from_a_png_equals_predict_from_raw_pixels(digits_run, tmp_path: Path):
    images = load_digits().images[:4]  # raw pixel values 0..16
    for i, img in enumerate(images):
        Image.fromarray((img * 255 / 16).round().astype(np.uint8)).save(tmp_path / f"{i}.png")
    raw = netwright.predict(digits_run, images)
    for i in range(4):
        (png,) = netwright.predict(digits_run, tmp_path / f"{i}.png")
        assert png["label"] == raw[i]["label"]
        for k, v in png["probabilities"].items():
            assert v == pytest.approx(raw[i]["probabilities"][k], abs=1e-3)
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "big.png")
    with pytest.raises(DataError, match="image is 16x16 .* but the model takes 8x8"):
        netwright.predict(digits_run, tmp_path / "big.png")


def test_regression_predictions_are_in_target_units(tmp_path: Path):
    run = netwright.train({"data": {"name": "diabetes"}, "model": {"name": "mlp", "hidden": [16]},
                           "train": {"epochs": 20, "threads": 1, "optimizer": {"name": "adam", "lr": 0.01}}},
                          name="reg", progress="quiet")
    from sklearn.datasets import load_diabetes

    d = load_diabetes(scaled=False)
    preds = [p["prediction"] for p in netwright.predict(run, d.data[:20])]
    assert 25 < np.mean(preds) < 346
    result = netwright.evaluate(run)
    assert set(result["metrics"]) == {"loss", "mae", "rmse", "r2"} and run.has("eval/predictions.png")
