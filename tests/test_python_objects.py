"""``netwright.train(model=module, data=dataset)``: an nn.Module and a torch Dataset straight from
Python. A module built by a registered builder makes an ordinary run (every verb, any process);
any other module's run stores weights only and says so; a Dataset is saved once (no pickle) so
that every verb reads the same examples; items that are not (input, target) pairs, and a model
that cannot take the data, are one line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import IterableDataset, TensorDataset

import netwright
from netwright.errors import DataError, NetwrightError

from conftest import tiny_spec


def digits() -> TensorDataset:
    d = load_digits()
    x = torch.tensor(d.images[:, None] / 16.0, dtype=torch.float32)  # (N, 1, 8, 8): images
    ds = TensorDataset(x, torch.tensor(d.target))
    ds.classes = [f"digit {i}" for i in range(10)]
    return ds


class SmallNet(nn.Module):  # a user's own module, registered nowhere
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.net(x)


def netwright_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netwright", *map(str, args)], capture_output=True, text=True)


def test_a_users_module_and_dataset_train_and_evaluate_in_this_process(_runs_dir):
    net = SmallNet()
    run = netwright.train({"train": {"epochs": 8, "threads": 1}, "data": {"val": 0.2}}, model=net, data=digits(),
                          name="objects", progress="quiet")
    spec = run.spec
    assert spec.model.name == "object" and spec.model.params["cls"].endswith("SmallNet")
    assert spec.data.name == "npz" and spec.data.val == 0.2 and run.info.class_names[3] == "digit 3"
    assert run.info.modality == "image" and run.info.splits["val"] > 300
    trained = net.net[1].weight.detach().clone()  # the object itself was trained
    assert torch.equal(run.load_model().net[1].weight, trained)
    assert netwright.evaluate(run, plots=False)["metrics"]["accuracy"] > 0.85
    # another process cannot rebuild an object: one line that says why and what to do
    r = netwright_cli("evaluate", run.path)
    assert r.returncode == 2 and "stores its weights only" in r.stderr and "register_model" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_module_from_a_registered_builder_makes_an_ordinary_run(_runs_dir):
    info = netwright.load_dataset(netwright.load_spec(tiny_spec()).data).info
    net = netwright.build_model("mlp", info, hidden=[12], dropout=0.1)
    run = netwright.train(tiny_spec(), model=net, name="built", progress="quiet")
    assert run.spec.model.name == "mlp" and run.spec.model.params["hidden"] == [12]
    r = netwright_cli("evaluate", run.path)  # rebuilt by name in another process
    assert r.returncode == 0, r.stderr


class Stream(IterableDataset):
    def __iter__(self):
        rng = np.random.default_rng(0)
        for _ in range(300):
            x = rng.normal(size=4).astype(np.float32)
            yield x, float(x @ np.array([1.0, -2.0, 0.5, 0.0]))


def test_an_iterable_dataset_is_saved_once_and_read_by_every_verb(_runs_dir):
    spec = {"model": {"name": "mlp", "hidden": [16]}, "train": {"epochs": 3, "threads": 1}}
    run = netwright.train(spec, data=Stream(), name="stream", progress="quiet")
    assert run.info.task == "regression" and run.info.modality == "tabular"
    saved = list((_runs_dir / ".datasets").glob("*.npz"))
    assert len(saved) == 1 and str(saved[0]) == run.spec.data.params["path"]
    again = netwright.train(spec, data=Stream(), name="stream2", progress="quiet")  # same content, same file
    assert again.spec.data.params["path"] == str(saved[0]) and len(list(saved[0].parent.iterdir())) == 1
    assert netwright_cli("evaluate", run.path).returncode == 0


def test_bad_objects_are_one_line(_runs_dir):
    pairs = [{"x": torch.zeros(3), "y": 1}] * 5
    with pytest.raises(DataError, match=r"item 0 is a dict with keys \['x', 'y'\]; each item must be an \(input, target\) pair"):
        netwright.train(tiny_spec(), data=pairs, name="bad", progress="quiet")
    with pytest.raises(NetwrightError, match="SmallNet cannot take this data's inputs of shape .4,."):
        netwright.train(tiny_spec(), model=SmallNet(), name="bad", progress="quiet")
    with pytest.raises(NetwrightError, match="not a torch.nn.Module"):
        netwright.train(tiny_spec(), model="mlp", name="bad", progress="quiet")
    assert not (_runs_dir / "bad").exists()


def test_a_pandas_dataframe_is_a_table_read_as_a_csv_would_be(_runs_dir):
    """``train(..., data=df)`` with the target named in the spec: the columns are read as a CSV's
    (a text column one-hot, a blank filled), every verb reads the same saved Parquet file, and a
    DataFrame without a named target is one line that says how."""
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    df = pd.DataFrame({"x": x, "colour": rng.choice(["red", "blue"], 300), "y": (x > 0).astype(int)})
    df.loc[5, "x"] = np.nan
    run = netwright.train({"data": {"target": "y"}, "model": {"name": "mlp", "hidden": [8]},
                           "train": {"epochs": 15, "threads": 1, "optimizer": {"name": "adam", "lr": 0.01}}},
                          data=df, name="frame", progress="quiet")
    assert run.spec.data.name == "parquet" and run.spec.data.params["target"] == "y"
    assert run.info.feature_names[:3] == ["x", "x_missing", "colour=blue"]
    assert netwright_cli("evaluate", run.path).returncode == 0
    assert netwright.evaluate(run, plots=False)["metrics"]["accuracy"] > 0.8
    rows = netwright.predict(run, df.drop(columns="y").head(4))  # a DataFrame to predict, as records too
    assert [r["label"] for r in rows] == [r["label"] for r in netwright.predict(run, df.head(4).to_dict("records"))]
    assert len(rows) == 4
    with pytest.raises(DataError, match=r"name the column to predict, e.g. \{'data': \{'target': 'y'\}\}"):
        netwright.train({"model": {"name": "mlp"}}, data=df, name="frame2", progress="quiet")
    assert not (_runs_dir / "frame2").exists()


def test_a_polars_dataframe_trains_and_predicts_like_pandas(_runs_dir):
    import polars as pl

    rng = np.random.default_rng(1)
    x = rng.normal(size=200)
    df = pl.DataFrame({"x": x, "when": [f"2024-0{1 + i % 9}-1{i % 9}" for i in range(200)], "y": (x > 0).astype(int)})
    run = netwright.train({"data": {"target": "y"}, "model": {"name": "mlp", "hidden": [8]},
                           "train": {"epochs": 2, "threads": 1}}, data=df, name="polars", progress="quiet")
    assert run.spec.data.name == "parquet" and "when.month" in run.info.feature_names  # dates read as dates
    assert len(netwright.predict(run, df.head(3))) == 3
