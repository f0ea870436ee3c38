"""Table files besides CSV: the ``parquet`` and ``jsonl`` loaders take the csv loader's options and
give the same data set from the same table (typed columns and nulls included); a damaged file is
one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import netwright
from netwright.data import load_dataset
from netwright.errors import DataError
from netwright.spec import load_spec

ROWS = [
    {"age": 34.5, "income": 52000, "city": "Lyon", "member": True, "label": "yes"},
    {"age": None, "income": 61000, "city": "Paris", "member": False, "label": "no"},
    {"age": 51.0, "income": None, "city": None, "member": True, "label": "yes"},
    {"age": 23.25, "income": 18000, "city": "Lyon", "member": None, "label": "no"},
] * 15


def write_all(folder: Path) -> dict[str, Path]:
    """The same rows as CSV (blank cells), Parquet (typed columns, nulls) and JSON Lines (nulls)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = {"csv": folder / "t.csv", "parquet": folder / "t.parquet", "jsonl": folder / "t.jsonl"}
    cols = list(ROWS[0])

    def text(v) -> str:
        return "" if v is None else str(v)  # a bool as Python (and pandas) writes it

    paths["csv"].write_text(",".join(cols) + "\n" + "".join(",".join(text(r[c]) for c in cols) + "\n" for r in ROWS))
    pq.write_table(pa.Table.from_pylist(ROWS), paths["parquet"])
    paths["jsonl"].write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return paths


def test_parquet_and_jsonl_give_the_csv_data_set(tmp_path: Path):
    loaded = {fmt: load_dataset(load_spec({"data": {"name": fmt, "path": str(p), "target": "label",
                                                    "categorical": ["city", "member"]},
                                           "model": {"name": "mlp"}}).data)
              for fmt, p in write_all(tmp_path).items()}
    ref = loaded["csv"]
    for fmt in ("parquet", "jsonl"):
        ds = loaded[fmt]
        assert ds.info.feature_names == ref.info.feature_names and ds.info.class_names == ref.info.class_names
        for split in ("train", "val", "test"):
            assert np.array_equal(ds.split(split).x.numpy(), ref.split(split).x.numpy()), (fmt, split)
            assert np.array_equal(ds.split(split).y.numpy(), ref.split(split).y.numpy())
        assert ds.info.preprocess["columns"] == ref.info.preprocess["columns"]
    assert "age_missing" in ref.info.feature_names  # the nulls were missing cells, filled with an indicator


def test_a_run_trained_on_parquet_predicts_a_parquet_file_in_bulk(tmp_path: Path):
    paths = write_all(tmp_path)
    run = netwright.train({"data": {"name": "parquet", "path": str(paths["parquet"]), "target": "label"},
                           "model": {"name": "mlp", "hidden": [4]}, "train": {"epochs": 2}},
                          name="pq", progress="quiet")
    done = netwright.predict_file(run, paths["parquet"], tmp_path / "out.jsonl")
    assert done["rows"] == len(ROWS)


@pytest.mark.parametrize("fmt, content, fragment", [
    ("parquet", b"PAR1 not really", "not a readable parquet file"),
    ("jsonl", b'{"a": 1}\n{"a": [1, 2]}\n', "every row needs the same columns with one value each"),
    ("jsonl", b'{"a": [1, 2]}\n{"a": [3]}\n', "nested value"),
    ("jsonl", b"", "has no rows"),
])
def test_a_damaged_table_file_is_one_line(tmp_path: Path, fmt: str, content: bytes, fragment: str):
    path = tmp_path / f"bad.{fmt}"
    path.write_bytes(content)
    with pytest.raises(DataError, match=fragment):
        load_dataset(load_spec({"data": {"name": fmt, "path": str(path), "target": "a"}, "model": {"name": "mlp"}}).data)


def write_orders(path: Path, n: int = 1000, seed: int = 0) -> Path:
    """Orders whose label depends on the weekday and the hour of a timestamp; an order number
    counting up (it names rows) and a customer code named like an identifier."""
    import csv
    import datetime as dt

    rng = np.random.default_rng(seed)
    start = dt.datetime(2024, 1, 1)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["order", "customer_id", "placed", "amount", "late"])
        for i in range(n):
            t = start + dt.timedelta(hours=int(rng.integers(0, 24 * 365)))
            late = t.weekday() >= 5 or t.hour >= 20
            placed = "" if i % 37 == 0 else t.isoformat()
            w.writerow([1000 + i, f"C{rng.integers(0, 10**9):09d}", placed, f"{rng.uniform(5, 200):.2f}",
                        "yes" if late else "no"])
    return path


def test_dates_become_their_parts_and_row_names_are_left_out(tmp_path: Path, cli):
    path = write_orders(tmp_path / "orders.csv")
    run = netwright.train({"data": {"name": "csv", "path": str(path), "target": "late"},
                           "model": {"name": "mlp", "hidden": [32, 32]}, "train": {"epochs": 40}},
                          name="orders", progress="quiet")
    info = run.info
    assert "order" not in " ".join(info.feature_names) and "customer_id" not in " ".join(info.feature_names)
    assert {"placed.year", "placed.month", "placed.day", "placed.weekday", "placed.days",
            "placed.hour"} <= set(info.feature_names)
    assert any("order left out: it names rows" in n for n in info.preprocess["notes"])
    assert "placed.weekday_missing" in info.feature_names  # a missing date: missing parts, filled
    # the weekday and the hour are what decides: far above the majority class (0.58)
    ev = netwright.evaluate(run, plots=False)
    assert ev["metrics"]["accuracy"] > 0.9 > ev["baseline"]["metrics"]["accuracy"] + 0.25
    # predict takes the dates as the file had them; a cell that is no date is one line
    rows = netwright.predict(run, {"order": [1], "customer_id": ["C1"], "placed": ["2024-06-01T21:00:00"],
                                   "amount": [20.0]})
    assert rows[0]["label"] == "yes"  # a Saturday evening
    odd = tmp_path / "odd.csv"  # a cell that is no date reads as a missing date, as in training
    odd.write_text("order,customer_id,placed,amount\n1,C1,next tuesday,3\n")
    assert netwright.predict(run, odd)[0]["label"] in ("yes", "no")
    r = cli("predict", run.path, tmp_path / "no_date.csv") if (tmp_path / "no_date.csv").write_text(
        "order,customer_id,amount\n1,C1,3\n") else None
    assert r.code == 2 and "missing column 'placed'" in r.err and len(r.err) < 300
    import signal

    import httpx

    from test_serve import start

    proc, url = start(run, "--engine", "torch")  # the real server takes the date too, in a batch of two
    try:
        r = httpx.post(url + "/predict", json={"features": [
            {"order": 1, "customer_id": "C1", "placed": "2024-06-01T21:00:00", "amount": 20.0},
            {"order": 2, "customer_id": "C2", "placed": None, "amount": 20.0}]})
        assert r.status_code == 200 and r.json()["predictions"][0]["label"] == "yes", r.text
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    drift = netwright.monitor(run, path, plots=False)  # the columns as the file has them, dates included
    assert "placed.weekday" in {f["feature"] for f in drift["features"]} and not drift["drift"]
    # listed in data.features, a row-naming column is used as the user says
    listed = load_dataset(load_spec({"data": {"name": "csv", "path": str(path), "target": "late",
                                              "features": ["order", "amount"]}, "model": {"name": "mlp"}}).data)
    assert listed.info.feature_names == ["order", "amount"]


def test_free_text_becomes_hashed_word_counts(tmp_path: Path):
    """Reviews whose label is in their words: hashed word and word-pair counts (the same as
    scikit-learn's HashingVectorizer gives) carry it; predict reads new texts the same way."""
    import csv

    from sklearn.feature_extraction.text import HashingVectorizer

    rng = np.random.default_rng(0)
    good, bad = ["great", "loved", "perfect", "works well"], ["broken", "awful", "returned it", "waste"]
    filler = ["the", "item", "arrived", "on", "time", "box", "colour", "blue", "size", "fits", "my", "kitchen"]
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["review", "stars_given", "label"])
        for i in range(600):
            pos = bool(rng.random() < 0.5)
            words = list(rng.choice(filler, 6)) + [str(rng.choice(good if pos else bad))]
            rng.shuffle(words)
            w.writerow([" ".join(words), int(rng.integers(1, 6)), "pos" if pos else "neg"])
    run = netwright.train({"data": {"name": "csv", "path": str(path), "target": "label"},
                           "model": {"name": "mlp", "hidden": [16]}, "train": {"epochs": 20}},
                          name="reviews", progress="quiet")
    info = run.info
    assert "review.#0" in info.feature_names and "review.#255" in info.feature_names
    assert any("review read as free text" in n for n in info.preprocess["notes"])
    assert netwright.evaluate(run, plots=False)["metrics"]["accuracy"] > 0.9  # the majority class: about 0.5
    rows = netwright.predict(run, {"review": ["the box arrived broken awful", "loved it great colour"],
                                   "stars_given": [3, 3]})
    assert [r["label"] for r in rows] == ["neg", "pos"]
    from netwright.data.derive import apply

    derived = apply({"review": ["loved it great"]}, info.preprocess["derived"], "t")
    ours = np.array([derived[f"review.#{i}"][0] for i in range(256)])
    theirs = HashingVectorizer(n_features=256, ngram_range=(1, 2), alternate_sign=False).transform(
        ["loved it great"]).toarray()[0]
    assert np.allclose(ours, theirs)


def test_a_column_of_many_categories_is_embedded_not_one_hot(tmp_path: Path):
    """300 shop codes whose first letter decides the label: an index the MLP embeds (a learnt
    vector per code) instead of 300 one-hot columns; a code first seen at predict time is
    '(other)'; the model exports and is explained by the methods that take ids."""
    import csv

    rng = np.random.default_rng(0)
    codes = [f"{'AB'[i % 2]}{i:03d}" for i in range(300)]
    path = tmp_path / "shops.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["shop", "visits", "label"])
        for _ in range(3000):
            code = codes[int(rng.integers(0, 300))]
            w.writerow([code, f"{rng.normal():.3f}", "high" if code[0] == "A" else "low"])
    run = netwright.train({"data": {"name": "csv", "path": str(path), "target": "label"},
                           "model": {"name": "mlp", "hidden": [16], "embed_dim": 8},
                           "train": {"epochs": 30, "optimizer": {"name": "adam", "lr": 0.01}}},
                          name="shops", progress="quiet")
    info = run.info
    (shop,) = [c for c in info.preprocess["columns"] if c["name"] == "shop"]
    assert shop["kind"] == "id" and shop["categories"][-1] == "(other)" and info.input_shape == (2,)
    assert any("shop: 300 categories, embedded" in n for n in info.preprocess["notes"])
    assert netwright.evaluate(run, plots=False)["metrics"]["accuracy"] > 0.95
    rows = netwright.predict(run, {"shop": ["A122", "ZZZ9"], "visits": [0.1, 0.1]})
    assert rows[0]["label"] == "high" and rows[1]["label"] in ("high", "low")  # an unseen code is '(other)'
    assert netwright.export(run, samples=64)["passed"]
    explained = netwright.explain(run, samples=2, sanity=False)
    assert "integrated_gradients" not in explained["methods"] and explained["methods"]


def test_what_reads_as_a_row_name_or_a_date_and_what_does_not():
    from netwright.data.derive import apply, fit

    n = 30
    rng = np.random.default_rng(1)
    table = {
        "humid": [f"{v:.4f}" for v in rng.random(n)],  # distinct measurements, named like '...id'
        "paid": [f"{v:.2f}" for v in rng.random(n) * 100],
        "userId": [f"u{i * 7}" for i in range(n)],  # a code in every row, named as an identifier
        "row": [str(i + 1) for i in range(n)],  # counts up: a row counter
        "shuffled": [str(v) for v in rng.permutation(n) + 1],  # the same numbers, not in order: kept
        "when": ["2024-03-01T10:00:00+02:00"] * (n - 2) + ["?", "soon"],  # '?' missing, 'soon' no date
    }
    kept, derived, notes = fit(table, list(table), False, None, frozenset({"?"}))
    assert "userId" not in kept and "row" not in kept
    assert {"humid", "paid", "shuffled"} <= set(kept)
    assert any("when read as dates" in n and "1 cell that is no date read as missing" in n for n in notes)
    out = apply(table, derived, "t", frozenset({"?"}))
    assert out["when.hour"][0] == 10.0 and out["when.day"][0] == 1.0  # the wall clock where it was written
    assert out["when.days"][0] == pytest.approx((19783 * 24 + 10) / 24)  # 2024-03-01 is day 19783
    assert np.isnan(out["when.hour"][-2:]).all()  # missing parts: NaN


def test_a_blank_date_is_one_missing_cell_not_one_per_part(tmp_path):
    """3 blank dates and 3 blank numbers: 6 missing cells in 2 columns, though each blank date is
    missing in each of its 5 parts (year, month, day, weekday, days)."""
    from netwright.data.missing import describe

    rows = [(f"2024-0{1 + i % 9}-1{i % 9}" if i % 20 else "", "" if i % 25 == 1 else f"{i * 0.5}", i % 2)
            for i in range(60)]
    path = tmp_path / "t.csv"
    path.write_text("signup,spend,y\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows))
    data = load_dataset(load_spec({"data": {"name": "csv", "path": str(path), "target": "y"},
                                   "model": {"name": "mlp"}}).data)
    assert describe(data.info.preprocess).startswith("6 missing cells in 2 columns filled with the train median")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_spellings_that_differ_in_case_are_one_category_in_training_and_at_predict_time(tmp_path, suffix):
    """'basic', 'Basic' and ' BASIC ' are one category named by its most frequent spelling (the
    note says so); predicting 'BASIC' gives what 'basic' gives (in a file too, through Arrow);
    data.fold_case: false keeps them apart."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    plans = ["basic"] * 20 + ["Basic"] * 5 + [" BASIC "] * 3 + ["pro"] * 22
    rows = [(p, i % 2) for i, p in enumerate(plans)]
    path = tmp_path / "t.csv"
    path.write_text("plan,y\n" + "".join(f"{p},{y}\n" for p, y in rows))
    spec = {"data": {"name": "csv", "path": str(path), "target": "y"}, "model": {"name": "mlp", "hidden": [4]},
            "train": {"epochs": 1}}
    data = load_dataset(load_spec(spec).data)
    col = data.info.preprocess["columns"][0]
    assert col["categories"] == ["basic", "pro"] and col["fold_case"]
    assert any("'BASIC', 'Basic', 'basic' read as 'basic'" in n for n in data.info.preprocess["notes"])
    run = netwright.train(spec, runs_dir=tmp_path / "runs", name="fold", progress="quiet")
    probe = tmp_path / f"probe{suffix}"
    if suffix == ".csv":
        probe.write_text("plan\nBASIC\nbasic\nPro\n")
    else:
        pq.write_table(pa.table({"plan": ["BASIC", "basic", "Pro"]}), probe)
    out = tmp_path / "p.csv"
    netwright.predict_file(run, probe, out)
    got = out.read_text().splitlines()[1:]
    assert got[0] == got[1] and got[2] != got[0]
    apart = load_dataset(load_spec({**spec, "data": {**spec["data"], "fold_case": False}}).data)
    assert apart.info.preprocess["columns"][0]["categories"] == ["BASIC", "Basic", "basic", "pro"]


def predicted_rows(tmp_path: Path, spec: dict, probe: str) -> list[str]:
    """The rows ``predict`` writes for the CSV text ``probe`` with a run of ``spec`` trained here."""
    run = netwright.train(spec, runs_dir=tmp_path / "runs", name="probe", progress="quiet")
    (tmp_path / "probe.csv").write_text(probe)
    netwright.predict_file(run, tmp_path / "probe.csv", tmp_path / "p.csv")
    return (tmp_path / "p.csv").read_text().splitlines()[1:]


def test_numbers_written_with_currency_signs_and_separators_are_numbers_at_training_and_predict_time(tmp_path):
    """'$1,234.50', '(1,200)', '12 €', '7%' are numbers (the note names the signs); a few 'n/a' still
    read as missing; predicting '$2,000' gives what '2000' gives; a column that is mostly words
    stays categories."""
    from netwright.data.derive import formatted_number

    assert formatted_number("$1,234.50") == (1234.5, frozenset({"$", ","}))
    assert formatted_number("(1,200)") == (-1200.0, frozenset({"()", ","}))
    assert formatted_number("-$5") == (-5.0, frozenset({"$"})) and formatted_number("12 €")[0] == 12.0
    assert formatted_number("7%") == (7.0, frozenset({"%"}))
    for bad in ("1,23", "12,34,567", "$", "abc", "1.2.3", "--5", ""):
        assert formatted_number(bad) is None, bad
    rng = np.random.default_rng(0)
    rows = []
    for i in range(60):
        amount = rng.uniform(100, 5000)
        cell = "n/a" if i == 7 else f'"${amount:,.2f}"' if i % 3 else f'"({amount:,.0f})"' if i % 2 else f"{amount:.2f}"
        rows.append(f"{cell},{['red', 'blue'][i % 2]},{int(amount > 2500)}")
    path = tmp_path / "t.csv"
    path.write_text("spend,colour,y\n" + "\n".join(rows) + "\n")
    spec = {"data": {"name": "csv", "path": str(path), "target": "y"}, "model": {"name": "mlp", "hidden": [4]},
            "train": {"epochs": 1}}
    data = load_dataset(load_spec(spec).data)
    spend, colour = data.info.preprocess["columns"][:2]
    assert spend["kind"] == "numeric" and colour["kind"] == "categorical"
    assert any("spend read as numbers written with '$' '()' ','" in n for n in data.info.preprocess["notes"])
    assert data.info.preprocess["missing"]["cells"] == 1
    got = predicted_rows(tmp_path, spec, 'spend,colour\n"$2,000",red\n2000,red\n(300),blue\n-300,blue\n')
    assert got[0] == got[1] and got[2] == got[3]


def test_log_and_quantile_transforms_are_applied_before_standardising_and_at_predict_time(tmp_path):
    """data.transform: log is sign(x) log(1 + |x|); quantile is scikit-learn's QuantileTransformer
    (uniform output, 101 quantiles) fitted on the train split only; both survive a run's reload."""
    from sklearn.preprocessing import QuantileTransformer

    from netwright.data.preprocess import normalize

    rng = np.random.default_rng(0)
    income = np.round(rng.lognormal(10, 1.5, 300), 2)
    income[:5] = 0.0  # ties at the bottom
    debt = np.round(rng.normal(0, 1000, 300), 2)
    path = tmp_path / "t.csv"
    path.write_text("income,debt,y\n" + "".join(f"{a},{b},{i % 2}\n" for i, (a, b) in enumerate(zip(income, debt))))
    spec = {"data": {"name": "csv", "path": str(path), "target": "y", "transform": {"income": "quantile",
                                                                                     "debt": "log"}},
            "model": {"name": "mlp", "hidden": [4]}, "train": {"epochs": 1}}
    run = netwright.train(spec, runs_dir=tmp_path / "runs", name="tails", progress="quiet")
    pre = run.info.preprocess
    mean, std = np.asarray(pre["mean"]), np.asarray(pre["std"])
    train_rows = run.load_data().split("train").x.numpy()
    assert np.allclose(train_rows.mean(0), 0, atol=1e-4)  # standardised after the transform, on the train split
    logged = train_rows[:, 1] * std[1] + mean[1]
    train_debt = np.sign(logged) * np.expm1(np.abs(logged))  # the train split's rows, found by their debt
    rows = [int(np.argmin(np.abs(debt - d))) for d in train_debt]
    assert len(set(rows)) == len(rows) < len(debt)
    ref = QuantileTransformer(n_quantiles=101).fit(income[rows, None])
    np.testing.assert_allclose(pre["columns"][0]["quantiles"], ref.quantiles_[:, 0], rtol=1e-6)
    x = normalize(pre, np.stack([income, debt], 1).astype(np.float32)) * std + mean
    np.testing.assert_allclose(x[:, 0], ref.transform(income[:, None])[:, 0], atol=1e-5)
    np.testing.assert_allclose(x[:, 1], np.sign(debt) * np.log1p(np.abs(debt)), rtol=1e-5, atol=1e-4)
    bad = {**spec, "data": {**spec["data"], "transform": {"y": "log"}}}
    with pytest.raises(DataError, match="data.transform: 'y' is not a model input"):
        load_dataset(load_spec(bad).data)


def test_a_prefix_cuts_a_code_to_categories(tmp_path):
    """data.prefix: {postcode: 3} makes the first three characters a category (at predict time too)."""
    rng = np.random.default_rng(0)
    codes = [f"{rng.integers(100, 104)}{rng.integers(10, 99)}" for _ in range(80)]
    path = tmp_path / "t.csv"
    path.write_text("postcode,y\n" + "".join(f"{c},{int(c[:3]) % 2}\n" for c in codes))
    spec = {"data": {"name": "csv", "path": str(path), "target": "y", "prefix": {"postcode": 3}},
            "model": {"name": "mlp", "hidden": [4]}, "train": {"epochs": 1}}
    data = load_dataset(load_spec(spec).data)
    col = data.info.preprocess["columns"][0]
    assert col["kind"] == "categorical" and col["categories"] == ["100", "101", "102", "103"]
    got = predicted_rows(tmp_path, spec, "postcode\n10155\n10199\n10255\n")
    assert got[0] == got[1] and got[2] != got[0]
    with pytest.raises(DataError, match="data.prefix: postcode: 0"):
        load_dataset(load_spec({**spec, "data": {**spec["data"], "prefix": {"postcode": 0}}}).data)
