"""Cross-validation: K stratified folds of the data outside the test split, one run per fold, the
folds' mean and spread, and the ensemble on the shared test split."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import netwright
from netwright import load_dataset, load_spec
from netwright.data import DATASETS

from conftest import assert_one_line_error, tiny_spec


def test_folds_partition_the_data_outside_the_test_split_stratified():
    from netwright.data.prepare import fingerprint, split_indices

    raw = DATASETS.get("digits").fn()
    digest = fingerprint(raw)
    plain_train, plain_val, plain_test, _ = split_indices(raw, digest, 0.15, 0.15, 0)
    vals, pool = [], np.concatenate([plain_train, plain_val])
    for i in range(1, 6):
        train, val, test, stratified = split_indices(raw, digest, 0.15, 0.15, 0, (5, i))
        assert stratified and np.array_equal(test, plain_test)  # the test split does not move
        assert np.array_equal(np.sort(np.concatenate([train, val])), np.sort(pool))
        # stratified: each class's count in the fold within one of a fifth of its count in the pool
        assert np.all(np.abs(np.bincount(raw.y[val], minlength=10) - np.bincount(raw.y[pool], minlength=10) / 5) <= 1)
        vals.append(val)
    everything = np.concatenate(vals)
    assert len(everything) == len(pool) and len(np.unique(everything)) == len(pool)  # disjoint, covering
    data = load_dataset(load_spec({"data": {"name": "digits", "folds": 5, "fold": 2}, "model": {"name": "mlp"}}).data)
    assert data.info.splits["val"] == len(vals[1]) and data.info.stratified


def test_train_folds_reports_mean_sd_and_the_ensemble(cli, tmp_path: Path, _runs_dir: Path):
    (tmp_path / "iris.yaml").write_text(yaml.safe_dump(tiny_spec(epochs=4)))
    result = cli("train", tmp_path / "iris.yaml", "--folds", "3", "--quiet")
    assert result.code == 0, result.err
    assert "3-fold cross-validation" in result.out and "mean +- sd" in result.out
    study = _runs_dir / "iris"
    folds = json.loads((study / "folds.json").read_text())
    accs = [r["test"]["accuracy"] for r in folds["rows"]]
    assert folds["summary"]["test"]["accuracy"]["mean"] == pytest.approx(statistics.fmean(accs))
    assert folds["summary"]["test"]["accuracy"]["sd"] == pytest.approx(statistics.stdev(accs))
    # the ensemble: the three models' probabilities averaged, computed here by hand
    runs = [netwright.Run.open(study / f"fold-{i}") for i in (1, 2, 3)]
    test = runs[0].load_data().test
    with torch.no_grad():
        probs = torch.stack([torch.softmax(r.load_model()(test.x), 1) for r in runs]).mean(0)
    manual = float((probs.argmax(1) == test.y).float().mean())
    assert folds["ensemble"]["metrics"]["accuracy"] == pytest.approx(manual)
    assert runs[1].spec.data.fold == 2 and runs[1].spec.data.folds == 3
    again = cli("evaluate", study)
    assert again.code == 0 and "ensemble of 3" in again.out
    assert cli("report", study / "fold-1").code == 0
    assert "fold 1 of 3" in (study / "fold-1" / "report.html").read_text()


def test_folds_bad_input(cli, tmp_path: Path):
    (tmp_path / "iris.yaml").write_text(yaml.safe_dump(tiny_spec(epochs=1)))
    assert_one_line_error(cli("train", tmp_path / "iris.yaml", "--folds", "1"), "at least 2 folds")
    assert_one_line_error(cli("train", tmp_path / "iris.yaml", "--set", "data.fold=2"), "data.folds and data.fold")
    assert_one_line_error(cli("train", tmp_path / "iris.yaml", "--set", "data.folds=3", "--set", "data.fold=4"),
                          "beyond data.folds")
