"""Missing cells in tables: filled with statistics of the train split only (checked against
scikit-learn's imputers on the same rows), marked by indicator columns, a missing target dropped
with a count, and the saved fills applied by ``predict``, ``monitor`` and the server's JSON."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netwright
from netwright.data import load_dataset
from netwright.data.missing import MISSING_CATEGORY, apply_iterative, describe, fit_iterative
from netwright.data.prepare import fingerprint, split_indices
from netwright.data.tabular import csv_file
from netwright.errors import DataError
from netwright.spec import load_spec


def data_spec(**data):
    return load_spec({"data": {"val": 0.2, "test": 0.2, **data}, "model": {"name": "mlp"}}).data


def holey_csv(path: Path, rows: int = 80, seed: int = 0, frac: float = 0.25) -> Path:
    """Two numeric columns (one a function of the other), a categorical one, blanks written as
    '', 'NA' and 'nan'; every fifth target missing."""
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["a", "b", "colour", "label"])
        for i in range(rows):
            a = rng.normal(10, 3)
            cells = [f"{a:.4f}", f"{2 * a + rng.normal(0, 0.1):.4f}", ["red", "green"][i % 2]]
            cells = [["", "NA", "nan"][i % 3] if rng.random() < frac else c for c in cells]
            w.writerow(cells + ["" if i % 5 == 4 else ("yes" if a > 10 else "no")])
    return path


def train_rows(raw, val=0.2, test=0.2):
    return split_indices(raw, fingerprint(raw), val, test, 0)[0]


@pytest.mark.parametrize("strategy", ["median", "mean", "most_frequent"])
def test_fills_are_the_train_splits_statistics_as_scikit_learn_computes_them(tmp_path: Path, strategy):
    from sklearn.impute import SimpleImputer

    path = holey_csv(tmp_path / "t.csv")
    ds = load_dataset(data_spec(name="csv", path=str(path), target="label", missing=strategy))
    raw = csv_file(path, target="label", missing=strategy)
    numeric = [0, 2]  # a, a_missing, b, b_missing, colour=...
    expected = SimpleImputer(strategy=strategy).fit(raw.x[train_rows(raw)][:, numeric]).statistics_
    fills = [c["fill"] for c in ds.info.preprocess["columns"] if c["kind"] == "numeric"]
    assert fills == pytest.approx(expected.tolist(), rel=1e-6)
    assert ds.info.feature_names[:4] == ["a", "a_missing", "b", "b_missing"]
    assert not np.isnan(ds.train.x.numpy()).any() and not np.isnan(ds.test.x.numpy()).any()
    indicators = ds.train.x[:, [1, 3]]
    assert set(indicators.unique().tolist()) == {0.0, 1.0}  # 0/1, not standardised
    # the missing target rows are gone, and the run says so
    assert sum(ds.info.splits.values()) == 64
    line = describe(ds.info.preprocess)
    assert "16 rows dropped (no label)" in line and "missing-indicator column" in line, line


def test_a_categorical_columns_missing_cells_are_its_own_category_or_the_most_frequent(tmp_path: Path):
    path = holey_csv(tmp_path / "t.csv")
    own = load_dataset(data_spec(name="csv", path=str(path), target="label"))
    assert "colour=" + MISSING_CATEGORY in own.info.feature_names
    assert "colour_missing" not in own.info.feature_names
    frequent = load_dataset(data_spec(name="csv", path=str(path), target="label", missing="most_frequent"))
    cols = {c["name"]: c for c in frequent.info.preprocess["columns"]}
    assert cols["colour"]["categories"] == ["green", "red"] and cols["colour"]["fill"] in ("green", "red")
    block = frequent.train.x[:, frequent.info.feature_names.index("colour=green"):][:, :2]
    assert bool((block.sum(1) == 1).all())  # every row one category: the filled ones too


def test_per_column_strategies_drop_constant_and_error(tmp_path: Path):
    path = holey_csv(tmp_path / "t.csv")
    ds = load_dataset(data_spec(name="csv", path=str(path), target="label",
                                missing={"a": "drop", "b": "constant", "default": "most_frequent"}, fill_value=-1))
    cols = {c["name"]: c for c in ds.info.preprocess["columns"]}
    assert cols["b"]["fill"] == -1.0 and cols["colour"]["missing"] == "most_frequent"
    assert "a_missing" not in ds.info.feature_names  # no missing cell left in 'a'
    assert "rows dropped (missing a)" in describe(ds.info.preprocess)
    from netwright.data.inputs import encode_inputs

    with pytest.raises(DataError, match="column 'a' row 1 is missing, and this run was trained with data.missing: drop"):
        encode_inputs(ds.info, {"a": [""], "b": ["1"], "colour": ["red"]})
    with pytest.raises(DataError, match=r"column 'a' row \d+ is missing \(data.missing: error\)"):
        load_dataset(data_spec(name="csv", path=str(path), target="label", missing="error"))
    with pytest.raises(DataError, match="no column 'nope'"):
        load_dataset(data_spec(name="csv", path=str(path), target="label", missing={"nope": "mean"}))


def test_iterative_imputation_repeats_scikit_learns_transform_with_numpy_only():
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer

    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 3))
    x = np.c_[z, z @ [1.0, 2.0, -1.0] + 0.1 * rng.normal(size=300)]
    x[rng.random(x.shape) < 0.2] = np.nan
    train, new = x[:200], x[200:]
    expected = IterativeImputer(max_iter=10, random_state=0, keep_empty_features=True).fit(train).transform(new)
    absent = np.isnan(new)
    ours = apply_iterative(fit_iterative(train, [0, 1, 2, 3]), np.where(absent, np.nanmean(train, 0), new), absent)
    np.testing.assert_allclose(ours, expected, atol=1e-9)
    # the planted relation is recovered: the filled last column is close to the truth where the others are there
    truth = z[200:] @ [1.0, 2.0, -1.0]
    rows = absent[:, 3] & ~absent[:, :3].any(1)
    assert np.abs(ours[rows, 3] - truth[rows]).max() < 0.5


def test_predict_and_monitor_use_the_saved_fills(tmp_path: Path, capsys):
    path = holey_csv(tmp_path / "t.csv", rows=120)
    run = netwright.train({"data": {"name": "csv", "path": str(path), "target": "label", "missing": "iterative"},
                           "model": {"name": "mlp", "hidden": [8]}, "train": {"epochs": 2, "threads": 1}},
                          name="holes", runs_dir=tmp_path / "runs", progress="quiet")
    capsys.readouterr()
    blank = netwright.predict(run, {"a": [None, ""], "b": ["NA", 20.0], "colour": ["", "red"]})
    assert len(blank) == 2
    note = capsys.readouterr().err  # a prediction that rests on filled values says so
    assert note.startswith("note: 4 missing cells filled as in training") and "a (2), b (1), colour (1)" in note, note
    netwright.predict(run, {"a": [1.0], "b": [2.0], "colour": ["red"]})
    assert capsys.readouterr().err == ""
    from netwright.data.inputs import encode_inputs

    x = encode_inputs(run.info, {"a": ["", 10.0], "b": [20.0, 20.0], "colour": ["red", "red"]})
    assert not np.isnan(x).any()
    assert abs(x[0, 0] - x[1, 0]) < 0.2  # a blank 'a' next to b = 20 is filled near 10: b is 2a
    out = tmp_path / "new.csv"
    holey_csv(out, rows=40, seed=1)
    report = netwright.monitor(run, out, plots=False)
    assert {r["feature"] for r in report["features"]} >= {"a", "b", "colour"}
    from fastapi.testclient import TestClient

    from netwright.deploy.server import create_app

    with TestClient(create_app(run, engine="torch", api_key="")) as c:
        r = c.post("/predict", json={"features": [{"a": None, "b": "NA", "colour": ""}, {"a": "", "b": 20, "colour": "red"}]})
        assert r.status_code == 200, r.text
        for served, local in zip(r.json()["predictions"], blank):
            assert served["probabilities"] == pytest.approx(local["probabilities"], abs=1e-5)
        r = c.post("/predict", json={"features": {"a": 1.0, "b": 2.0}})
        assert r.status_code == 400 and "missing feature(s): colour; send null" in r.json()["error"]


def test_breast_cancer_with_a_fifth_of_its_cells_blank_trains_and_predicts(tmp_path: Path):
    from sklearn.datasets import load_breast_cancer

    b = load_breast_cancer()
    rng = np.random.default_rng(0)
    path = tmp_path / "bc.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([n.replace(" ", "_") for n in b.feature_names] + ["diagnosis"])
        for row, y in zip(b.data, b.target):
            w.writerow(["" if rng.random() < 0.2 else repr(float(v)) for v in row] + [b.target_names[y]])
    run = netwright.train({"data": {"name": "csv", "path": str(path), "target": "diagnosis", "missing": "iterative",
                                    "test": 0.2}, "model": {"name": "mlp", "hidden": [32]},
                           "train": {"epochs": 30, "batch_size": 32, "threads": 1}},
                          name="bc", runs_dir=tmp_path / "runs", progress="quiet")
    assert netwright.evaluate(run)["metrics"]["accuracy"] > 0.9
    rows = netwright.predict(run, path)
    assert len(rows) == 569 and all(r["label"] in ("benign", "malignant") for r in rows)


CELLS = st.one_of(st.sampled_from(["", "NA", "nan", "null", " ", "N/A"]),
                  st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: f"{f:.3f}"), st.sampled_from(["x", "y", "z"]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(CELLS, CELLS, st.sampled_from(["0", "1", ""])), min_size=6, max_size=30))
def test_any_table_of_messy_cells_loads_to_finite_inputs_or_is_refused_in_one_line(tmp_path: Path, rows):
    path = tmp_path / "m.csv"
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([["p", "q", "label"], *rows])
    try:
        ds = load_dataset(data_spec(name="csv", path=str(path), target="label", val=0.0, test=0.0,
                                    task="classification"))
    except DataError as e:
        assert "\n" not in str(e)
        return
    assert np.isfinite(ds.train.x.numpy()).all()


def test_an_audit_of_a_table_with_blanks_leaves_out_unlabelled_rows_and_names_the_missing_group(tmp_path: Path):
    rng = np.random.default_rng(0)
    path = tmp_path / "g.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["a", "group", "label"])
        for i in range(200):
            a = rng.normal()
            w.writerow(["" if i % 7 == 0 else f"{a:.3f}", "NA" if i % 11 == 0 else "ab"[i % 2],
                        "" if i % 13 == 0 else ("yes" if a > 0 else "no")])
    run = netwright.train({"data": {"name": "csv", "path": str(path), "target": "label", "sensitive": ["group"]},
                           "model": {"name": "mlp", "hidden": [8]}, "train": {"epochs": 2, "threads": 1},
                           "fairness": {"sensitive": ["group"], "positive_label": "yes"}},
                          name="g", runs_dir=tmp_path / "runs", progress="quiet")
    assert MISSING_CATEGORY in set(run.load_data().train.groups["group"])
    report = netwright.audit(run, data=path, plots=False)
    assert report["n"] == 200 - len(range(0, 200, 13))
    assert MISSING_CATEGORY in json.dumps(report)
