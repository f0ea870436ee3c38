"""Class imbalance: ``train.class_weight: balanced`` and ``train.sampler: balanced`` against
scikit-learn's definitions, on a planted 95/5 table where the minority class is what matters;
balanced accuracy in ``evaluate``."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

import netwright
from netwright.tasks.classification import balanced_weights

from conftest import assert_one_line_error


def write_imbalanced(path: Path, n: int = 1200, minority: float = 0.05, seed: int = 0) -> Path:
    """Two overlapping Gaussian classes, 5% of the rows in class 'rare': a plain fit mostly says 'common'."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < minority
    x = rng.normal(size=(n, 4)) + np.where(y[:, None], 1.2, 0.0)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["a", "b", "c", "d", "label"])
        for row, rare in zip(x, y):
            w.writerow([f"{v:.4f}" for v in row] + ["rare" if rare else "common"])
    return path


def spec(path: Path, **train) -> dict:
    return {"data": {"name": "csv", "path": str(path), "target": "label", "val": 0.2, "test": 0.3},
            "model": {"name": "mlp", "hidden": [16]}, "seed": 0,
            "train": {"epochs": 15, "batch_size": 32, "threads": 1, "keep": "last", **train}}


def test_balanced_weights_are_scikit_learns():
    from sklearn.utils.class_weight import compute_class_weight

    y = np.array([0] * 90 + [1] * 7 + [2] * 3)
    ours = balanced_weights(torch.from_numpy(y), 3).numpy()
    theirs = compute_class_weight("balanced", classes=np.arange(3), y=y)
    assert ours == pytest.approx(theirs, rel=1e-6)
    assert balanced_weights(torch.tensor([0, 0, 2]), 3)[1] == 0  # an absent class weighs nothing


def test_balanced_training_finds_the_rare_class(tmp_path: Path):
    """On the planted 95/5 table: balanced accuracy (scikit-learn's, recomputed from predict) and
    the rare class's recall rise with class weights and with the balanced sampler."""
    from sklearn.metrics import balanced_accuracy_score, recall_score

    path = write_imbalanced(tmp_path / "rare.csv")
    scores = {}
    for name, train in (("plain", {}), ("weighted", {"class_weight": "balanced"}),
                        ("sampled", {"sampler": "balanced"})):
        run = netwright.train(spec(path, **train), name=name, progress="quiet")
        ev = netwright.evaluate(run, plots=False)
        test = run.load_data().test
        raw = run.info.raw(test.x)  # the rows as the CSV gave them: predict takes raw inputs
        pred = np.array([r["class"] for r in netwright.predict(run, {n: raw[:, i] for i, n in
                                                                     enumerate(run.info.feature_names)})])
        y = test.y.numpy()
        assert ev["metrics"]["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
        rare = run.info.class_names.index("rare")
        scores[name] = (ev["metrics"]["balanced_accuracy"], recall_score(y, pred, labels=[rare], average="macro"))
    assert scores["weighted"][0] > scores["plain"][0] + 0.1 and scores["weighted"][1] > scores["plain"][1] + 0.3
    assert scores["sampled"][0] > scores["plain"][0] + 0.1 and scores["sampled"][1] > scores["plain"][1] + 0.3


def test_the_balanced_sampler_draws_every_class_about_equally():
    from netwright.data import DataInfo
    from netwright.spec import TrainSpec
    from netwright.tasks import ClassificationTask

    info = DataInfo(name="t", task="classification", modality="tabular", input_shape=(2,), num_classes=2,
                    class_names=["a", "b"])
    task = ClassificationTask(info, TrainSpec(sampler="balanced"))
    y = torch.tensor([0] * 950 + [1] * 50)
    draws = torch.multinomial(task.sampling_weights(y).double(), 20_000, replacement=True,
                              generator=torch.Generator().manual_seed(0))
    share = float((y[draws] == 1).double().mean())
    assert 0.48 < share < 0.52
    assert ClassificationTask(info, TrainSpec()).sampling_weights(y) is None


def test_class_weights_for_a_regressor_are_one_line(cli, tmp_path: Path):
    import yaml

    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"data": {"name": "diabetes"}, "model": {"name": "mlp"},
                                                     "train": {"class_weight": "balanced", "epochs": 1}}))
    assert_one_line_error(cli("train", tmp_path / "s.yaml"), "train.class_weight: balanced applies to classifiers")


def test_with_class_weights_ranks_share_the_weighted_mean_as_one_process_takes_it():
    """--nproc: each rank's weighted mean, scaled by its share and averaged over the ranks (as DDP
    averages gradients), equals the one-process weighted mean of the whole batch."""
    import torch.nn.functional as F

    from netwright.data import DataInfo
    from netwright.spec import TrainSpec
    from netwright.tasks import ClassificationTask

    info = DataInfo(name="t", task="classification", modality="tabular", input_shape=(2,), num_classes=3,
                    class_names=list("abc"))
    task = ClassificationTask(info, TrainSpec(class_weight="balanced"))
    y = torch.tensor([0] * 40 + [1] * 7 + [2] * 3)
    task.class_weights = balanced_weights(y, 3)
    g = torch.Generator().manual_seed(0)
    out, batch = torch.randn(16, 3, generator=g), y[torch.randperm(50, generator=g)[:16]]
    whole = task.loss(out, batch)
    assert float(whole) == pytest.approx(float(F.cross_entropy(out, batch, weight=task.class_weights)))
    world = 2
    shards = [torch.arange(r, 16, world) for r in range(world)]
    ranks = [task.loss(out[i], batch[i]) * task.share(batch[i], batch) * world for i in shards]
    assert float(sum(ranks) / world) == pytest.approx(float(whole), rel=1e-6)
    plain = ClassificationTask(info, TrainSpec())  # without weights: the share of the examples
    assert plain.share(batch[shards[0]], batch) == 0.5
