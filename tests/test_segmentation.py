"""Semantic segmentation: the masks of the detection scenes, mIoU / Dice against scikit-learn, the
U-Net's contract (gradients, ONNX), the kind's evaluation with its baselines, and a tiny run
through train, evaluate, predict and export."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image

import netwright
import netwright.data.segments  # noqa: F401  (registers fashion_segments until the package imports it)
import netwright.models.unet  # noqa: F401  (registers unet)
import netwright.tasks.segmentation  # noqa: F401  (registers the kind)
from netwright import DataInfo, NetwrightError, build_model, load_dataset, load_spec
from netwright.data.segments import masks_from_boxes
from netwright.tasks.detection import DetectionTask
from netwright.tasks.segmentation import (SegmentationTask, confusion_per_example, mask_scores, report,
                                          threshold_baseline)
from conftest import ROOT, needs_packages

needs_fashion = needs_packages("dataset-fashion-mnist")
K = 11
INFO = DataInfo(name="seg", task="segmentation", modality="image", input_shape=(1, 64, 64), num_classes=K,
                class_names=["background", *(f"c{i}" for i in range(K - 1))])
TINY = SegmentationTask.example()


def tiny_data():
    return load_dataset(load_spec(TINY).data)


# ---------------------------------------------------------------------- data


@needs_fashion
def test_masks_line_up_with_the_boxes_of_the_same_scenes():
    from netwright.data.fashion import fashion_arrays
    from netwright.data.scenes import compose, fashion_scenes
    from netwright.data.segments import fashion_segments

    seg, det = fashion_segments(scenes=24, test_scenes=6, seed=3), fashion_scenes(scenes=24, test_scenes=6, seed=3)
    assert np.array_equal(seg.x, det.x) and np.array_equal(seg.test[0], det.test[0])  # the very same scenes
    assert seg.y.shape == (24, 64, 64) and seg.y.dtype == np.int64 and seg.task == "segmentation"
    assert seg.class_names[0] == "background" and len(seg.class_names) == K
    x, boxes = compose(*fashion_arrays()["train"], 24, 3)
    assert np.array_equal(seg.y, masks_from_boxes(x, boxes))
    for i in range(24):
        inside = np.zeros((64, 64), dtype=bool)
        painted = np.zeros((64, 64), dtype=np.int64)
        for c, x1, y1, x2, y2 in boxes[i][boxes[i, :, 0] >= 0]:
            inside[y1:y2, x1:x2] = True
            bright = np.zeros((64, 64), dtype=bool)
            bright[y1:y2, x1:x2] = x[i, 0, y1:y2, x1:x2] > 10
            painted[bright] = c + 1  # later boxes overwrite earlier ones
        assert np.array_equal(seg.y[i], painted)
        assert not seg.y[i][~inside].any()  # nothing outside the boxes
        assert (seg.y[i][inside & (x[i, 0] > 10)] > 0).all()  # every bright pixel in a box is a garment
        for c in set(np.unique(seg.y[i]).tolist()) - {0}:  # each class present has a box of that class
            assert c - 1 in boxes[i, :, 0]
    ds = load_dataset(load_spec(TINY).data)  # through prepare: the mask survives splitting untouched
    assert ds.train.y.dtype == torch.int64 and tuple(ds.train.y.shape[1:]) == (64, 64)
    assert ds.info.num_classes == K and ds.info.task == "segmentation" and int(ds.train.y.max()) < K


# ---------------------------------------------------------------------- metrics


def test_iou_dice_and_pixel_accuracy_equal_scikit_learns():
    from sklearn.metrics import accuracy_score, f1_score, jaccard_score

    rng = np.random.default_rng(0)
    true = rng.integers(0, 6, (5, 16, 16))  # classes 6..10 never true
    pred = np.where(rng.random(true.shape) < 0.6, true, rng.integers(0, 8, true.shape))  # 6, 7 predicted only
    cm = confusion_per_example(torch.from_numpy(pred), torch.from_numpy(true), K)
    assert cm.shape == (5, K * K) and int(cm.sum()) == true.size
    s = mask_scores(cm.sum(0).reshape(K, K).numpy())
    t, p = true.ravel(), pred.ravel()
    seen = sorted(set(t.tolist()) | set(p.tolist()))
    assert seen == list(range(8))  # classes 8..10: neither true nor predicted -> left out of the means
    iou = jaccard_score(t, p, labels=seen, average=None)
    dice = f1_score(t, p, labels=seen, average=None)
    assert np.allclose(s["iou"][seen], iou) and np.allclose(s["dice"][seen], dice)
    assert np.isnan(s["iou"][8:]).all() and s["iou"][6] == s["iou"][7] == 0.0  # predicted, never true: 0, counted
    assert s["miou"] == pytest.approx(iou.mean()) and s["mean_dice"] == pytest.approx(dice.mean())
    assert s["pixel_accuracy"] == pytest.approx(accuracy_score(t, p))
    rows = report(cm.sum(0).reshape(K, K).numpy(), INFO.class_names, 0.5)
    assert rows["per_class"][9] == {"class": "c8", "iou": None, "dice": None, "support_pixels": 0}
    assert rows["metrics"] == {"miou": s["miou"], "dice": s["mean_dice"], "pixel_accuracy": s["pixel_accuracy"],
                               "loss": 0.5}

    # the kind's eval_step / metrics, batch by batch, give the same numbers as the whole at once
    task = SegmentationTask(INFO)

    def model(x):  # "predicts" the masks of the batch: one-hot logits
        return torch.nn.functional.one_hot(x[:, 0].long(), K).permute(0, 3, 1, 2).float() * 10

    x, y = torch.from_numpy(pred)[:, None].float(), torch.from_numpy(true)
    parts = [task.eval_step(model, (x[i:i + 2], y[i:i + 2])) for i in range(0, 5, 2)]
    outputs = {k: torch.cat([o[k] for o in parts]) for k in parts[0]}
    assert outputs["confusion"].shape == (5, K * K) and outputs["loss"].shape == (5,)
    m = task.metrics(outputs)
    assert set(m) == set(task.metric_names) and m["miou"] == pytest.approx(iou.mean())
    assert m["pixel_accuracy"] == pytest.approx(accuracy_score(t, p))
    logits = model(x)
    assert m["loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, y)), rel=1e-5)


# ---------------------------------------------------------------------- model


def test_a_tiny_unet_trains_every_parameter_and_refuses_other_data():
    torch.manual_seed(0)
    for params in ({"channels": [4, 8]}, {"channels": [4, 8, 8], "norm": "layer", "upsample": "bilinear",
                                         "convs_per_block": 1}):
        model = build_model("unet", INFO, **params).train()
        x, y = torch.randn(3, 1, 64, 64), torch.randint(0, K, (3, 64, 64))
        out = model(x)
        assert out.shape == (3, K, 64, 64)
        task = SegmentationTask(INFO)
        task.objective(model, (x, y)).backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    digits = DataInfo(name="digits", task="classification", modality="image", input_shape=(1, 8, 8), num_classes=10)
    with pytest.raises(NetwrightError, match="fashion_segments"):
        build_model("unet", digits)
    odd = DataInfo(name="odd", task="segmentation", modality="image", input_shape=(1, 30, 30), num_classes=3)
    with pytest.raises(NetwrightError, match="multiples of 4"):
        build_model("unet", odd, channels=[4, 8, 8])


def test_the_unet_exports_to_onnx_and_onnx_runtime_agrees(tmp_path):
    from netwright.deploy.onnx_io import export_onnx, onnx_session, run_session

    torch.manual_seed(0)
    model = build_model("unet", INFO, channels=[4, 8, 8]).eval()
    with torch.no_grad():  # batch-norm statistics that are not the identity
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    export_onnx(model, INFO, tmp_path / "unet.onnx")
    x = torch.randn(5, 1, 64, 64)  # another batch size than the export's example: the batch axis is dynamic
    with torch.no_grad():
        expected = model(x).numpy()
    got = run_session(onnx_session(tmp_path / "unet.onnx"), x.numpy())
    assert got.shape == (5, K, 64, 64) and np.abs(got - expected).max() < 1e-4


# ---------------------------------------------------------------------- the kind, on a hand-made run


class HandRun:
    """What SegmentationTask.evaluate reads of a run: its data and its model."""

    def __init__(self, data, model, path):
        self.data, self.model, self.path = data, model, path

    def load_data(self):
        return self.data

    def load_model(self):
        return self.model.eval()


@needs_fashion
def test_evaluate_scores_the_model_beside_baselines_fitted_on_train(tmp_path):
    from sklearn.metrics import jaccard_score

    data = tiny_data()
    spec = load_spec(TINY)
    torch.manual_seed(0)
    model = build_model("unet", data.info, **spec.model.params)
    task = SegmentationTask(data.info, spec.train)
    opt = task.optimizers(model)
    losses = [float(task.train_step(model, (data.train.x[:16], data.train.y[:16]), opt)) for _ in range(5)]
    assert losses[-1] < losses[0]
    run = HandRun(data, model, tmp_path)
    result = task.evaluate(run, "test", batch_size=5)
    assert result["split"] == "test" and result["n"] == 16 and result["task"] == "segmentation"
    assert set(result["metrics"]) == {"miou", "dice", "pixel_accuracy", "loss"}
    assert [r["class"] for r in result["per_class"]] == data.info.class_names
    assert sum(r["support_pixels"] for r in result["per_class"]) == 16 * 64 * 64
    with torch.no_grad():
        pred = model.eval()(data.test.x).argmax(1).numpy().ravel()
    true = data.test.y.numpy().ravel()
    seen = sorted(set(true.tolist()) | set(pred.tolist()))
    assert result["metrics"]["miou"] == pytest.approx(jaccard_score(true, pred, labels=seen, average=None).mean())
    base = result["baseline"]
    assert base["fitted_on"] == "train" and base["name"] and base["detail"]
    assert set(base["metrics"]) == set(result["metrics"])
    others = result["other_baselines"]
    assert len(others) == 1 and base["metrics"]["miou"] >= others[0]["metrics"]["miou"]
    # the intensity threshold finds the masks' own threshold: foreground exactly, one class for it
    rule = threshold_baseline(data.info, data.train, data.test)
    assert rule["name"] == "intensity threshold" and rule["per_class_iou"]["background"] > 0.99
    assert 0 < rule["metrics"]["miou"] < 0.3
    task.plots(run, result, tmp_path / "eval")
    with Image.open(tmp_path / "eval" / "overlays.png") as picture:
        assert picture.size[0] > 400
    with pytest.raises(NetwrightError, match="--coverage"):
        task.prepare(run, model, coverage=0.9)
    with torch.no_grad():
        rows = task.decode(model(data.test.x[:2]), None)
    assert len(rows) == 2
    mask = np.array(rows[0]["mask"])
    assert mask.shape == (64, 64) and sum(rows[0]["classes"].values()) == 64 * 64
    with Image.open(io.BytesIO(base64.b64decode(rows[0]["mask_png"]))) as png:
        assert png.mode == "P" and np.array_equal(np.asarray(png), mask)
    assert len(rows[0]["mask_png"]) < 4000


# ---------------------------------------------------------------------- end to end


def test_the_example_spec_validates_and_names_its_kind():
    from netwright.tasks import task_class

    spec = load_spec(ROOT / "examples" / "fashion_segment.yaml")
    assert spec.data.name == "fashion_segments" and spec.model.name == "unet"
    assert task_class(INFO, "unet") is SegmentationTask
    with pytest.raises(NetwrightError, match="needs model.name: unet"):
        task_class(INFO, "cnn")  # segmentation data with a classifier


@needs_fashion
def test_a_tiny_run_trains_evaluates_predicts_and_exports(tmp_path, cli):
    run = netwright.train(TINY, name="segment", progress="quiet")
    assert run.read_json("data.json")["task"] == "segmentation"
    assert "val_miou" in run.metrics()[-1]
    result = netwright.evaluate(run)
    saved = run.read_json("eval.json")
    assert saved["task"] == "segmentation" and saved["baseline"]["fitted_on"] == "train"
    assert len(saved["per_class"]) == K and saved["metrics"]["miou"] == result["metrics"]["miou"]
    assert run.has("eval/overlays.png")
    from netwright.data.fashion import fashion_arrays
    from netwright.data.scenes import compose

    scenes, _ = compose(*fashion_arrays()["test"], 3, seed=5)
    rows = netwright.predict(run, scenes)  # (3, 1, 64, 64) pixel values 0..255
    assert len(rows) == 3 and all(np.array(r["mask"]).shape == (64, 64) for r in rows)
    Image.fromarray(scenes[0, 0].astype(np.uint8)).save(tmp_path / "scene.png")
    (row,) = netwright.predict(run, tmp_path / "scene.png")
    assert np.array(row["mask"]).shape == (64, 64) and set(row["classes"]) <= set(run.info.class_names)
    r = cli("predict", run.path, tmp_path / "scene.png", "--out", tmp_path / "mask.png")  # the mask as a picture
    assert r.code == 0, r.err
    assert (np.asarray(Image.open(tmp_path / "mask.png")) == np.array(row["mask"])).all()
    assert netwright.export(run)["passed"]


def test_augmentation_that_moves_the_image_is_refused_for_spatial_targets():
    """A shift or a flip moves the garments but not their masks (nor a detector's boxes)."""
    from netwright.errors import SpecError

    for kind_spec in (TINY, {**DetectionTask.example()}):
        spec = {**kind_spec, "train": {**kind_spec["train"], "augment": {"shift": 2, "flip": True, "noise": 0.1}}}
        with pytest.raises(SpecError) as e:
            netwright.train(spec, name="moved", progress="quiet")
        assert "train.augment.shift: moves the image" in str(e.value) and "train.augment.flip" in str(e.value)
        assert "noise" not in str(e.value)  # noise leaves every pixel where it was
