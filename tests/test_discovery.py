"""A spec a user can discover: every key listed with help, a JSON Schema editors use, and
``netwright init`` writing a spec for a user's own table that trains as written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_breast_cancer

import netwright
from netwright import DATASETS, MODELS, load_spec
from netwright.data.columns import infer_column
from netwright.data.missing import MISSING_TOKENS
from netwright.schema import spec_schema
from conftest import ROOT, assert_one_line_error

SCHEMA_FILE = ROOT / "src" / "netwright" / "spec.schema.json"
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_shipped_schema_is_the_generated_one():
    assert json.loads(SCHEMA_FILE.read_text()) == spec_schema(), \
        "regenerate it: netwright spec --schema --out src/netwright/spec.schema.json"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_names_the_schema_and_passes_it(path, validator):
    assert path.read_text().splitlines()[0] == "# yaml-language-server: $schema=../src/netwright/spec.schema.json"
    assert (path.parent / "../src/netwright/spec.schema.json").resolve() == SCHEMA_FILE
    errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
    assert not errors, errors


@pytest.mark.parametrize("edit", [
    lambda s: s["model"].update(kernal_size=3),           # a misspelt model key
    lambda s: s["data"].update(splt_seed=1),              # a misspelt common data key
    lambda s: s["train"].update(epoch=3),                 # a misspelt train key
    lambda s: s["train"]["optimizer"].update(name="adamm"),
    lambda s: s.update(model={"name": "cnnn"}),           # an unknown model
    lambda s: s["data"].update(name="csv"),               # csv without its required path and target
    lambda s: s["model"].update(channels="wide"),         # a wrong type
])
def test_the_schema_rejects_what_validation_rejects(edit, validator):
    spec = yaml.safe_load((ROOT / "examples" / "digits_cnn.yaml").read_text())
    edit(spec)
    assert list(validator.iter_errors(spec))
    with pytest.raises(netwright.SpecError):
        load_spec(spec)


def test_the_schema_accepts_a_natural_positive_label(validator):
    spec = yaml.safe_load((ROOT / "examples" / "loans_fairness.yaml").read_text())
    spec["fairness"]["positive_label"] = 1
    assert not list(validator.iter_errors(spec))
    assert load_spec(spec).fairness.positive_label == "1"


@pytest.mark.parametrize("entry", [*DATASETS.entries(), *MODELS.entries()], ids=lambda e: e.name)
def test_every_registered_key_has_one_line_of_help(entry):
    helps = entry.help()
    assert set(entry.params.model_fields) == set(helps), "document each parameter in the docstring's Args:"
    assert all(h.strip() for h in helps.values())


@pytest.mark.parametrize("kind, name", [("datasets", "csv"), ("datasets", "images"), ("datasets", "text_csv"),
                                        ("models", "cnn")])
def test_datasets_and_models_NAME_show_every_key(cli, kind, name):
    entry = (DATASETS if kind == "datasets" else MODELS).get(name)
    result = cli(kind, name)
    assert result.code == 0, result.err
    section = "data" if kind == "datasets" else "model"
    for key, text in entry.help().items():
        assert f"{section}.{key}" in result.out
        assert text.split()[0] in result.out
    if kind == "datasets":
        assert "data.split_seed" in result.out  # the keys every loader shares


def test_spec_outline_and_schema_commands(cli, tmp_path):
    outline = cli("spec")
    assert outline.code == 0 and "train:" in outline.out and "  optimizer:" in outline.out
    assert yaml.safe_load(outline.out)["train"]["epochs"] == 20  # the outline is YAML with the defaults
    result = cli("spec", "--schema", "--out", tmp_path / "schema.json")
    assert result.code == 0
    assert json.loads((tmp_path / "schema.json").read_text()) == spec_schema()


# ---------------------------------------------------------------------- netwright init


def write_rows(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def mixed_csv(tmp_path) -> Path:
    """Numeric, categorical, an ID column, a code column and free text; a planted rule for the target."""
    rng = np.random.default_rng(0)
    words = "the service was quick and friendly but the price felt high for what we got".split()
    rows = []
    for i in range(400):
        age, income, job = int(rng.integers(18, 70)), rng.normal(50_000, 15_000), str(rng.choice(["clerk", "nurse", "cook"]))
        comment = " ".join(rng.choice(words, size=int(rng.integers(4, 10))))
        approved = int(income + 20_000 * (job == "nurse") + rng.normal(0, 5_000) > 55_000)
        rows.append([1000 + i, age, f"{income:.2f}", job, str(rng.choice(["F", "M"])), comment,
                     f"X{rng.integers(10**6):06d}", approved])
    return write_rows(tmp_path / "people.csv",
                      ["customer_id", "age", "income", "job", "sex", "comment", "code", "approved"], rows)


def test_init_infers_column_kinds_and_the_spec_trains_as_written(cli, mixed_csv):
    result = cli("init", mixed_csv, "--target", "approved", "--sensitive", "sex")
    assert result.code == 0, result.err
    spec_path = mixed_csv.with_suffix(".yaml")
    assert f"next: netwright train {spec_path}" in result.out
    text = spec_path.read_text()
    spec = yaml.safe_load(text)
    assert spec["data"]["features"] == ["age", "income", "job"] and spec["data"]["categorical"] == ["job"]
    for col, kind in [("customer_id", "id"), ("comment", "text"), ("code", "id"), ("job", "categorical")]:
        assert any(line.split()[1:3] == [col, kind] for line in text.splitlines() if line.startswith("#   ")), col
    assert spec["fairness"] == {"sensitive": ["sex"], "positive_label": 1}
    trained = cli("train", spec_path, "-q")
    assert trained.code == 0, trained.err
    scored = netwright.evaluate(netwright.Run.open("runs/people"))
    majority = max(np.mean(np.array(spec_rows(mixed_csv, "approved")) == v) for v in ("0", "1"))
    assert scored["metrics"]["accuracy"] > majority + 0.1  # the planted rule is learnt, not the base rate
    assert cli("audit", "runs/people").code == 0


def spec_rows(path: Path, column: str) -> list[str]:
    with open(path, newline="") as f:
        return [r[column] for r in csv.DictReader(f)]


def test_init_on_breast_cancer_trains_as_written(cli, tmp_path):
    d = load_breast_cancer()
    path = write_rows(tmp_path / "cancer.csv", [*d.feature_names, "diagnosis"],
                      [[*map(float, x), d.target_names[y]] for x, y in zip(d.data, d.target)])
    assert cli("init", path, "--target", "diagnosis").code == 0
    spec = load_spec(path.with_suffix(".yaml"))
    assert spec.data.params["features"] == list(d.feature_names) and spec.data.params["categorical"] == []
    assert cli("train", path.with_suffix(".yaml"), "-q").code == 0
    assert netwright.evaluate(netwright.Run.open("runs/cancer"))["metrics"]["accuracy"] > 0.9


def test_init_errors_name_the_fix_and_leave_files_alone(cli, mixed_csv):
    assert_one_line_error(cli("init", mixed_csv, "--target", "aproved"), "no column 'aproved'", "columns are")
    assert cli("init", mixed_csv, "--target", "approved").code == 0
    spec_path = mixed_csv.with_suffix(".yaml")
    before = spec_path.read_bytes()
    assert_one_line_error(cli("init", mixed_csv, "--target", "age"), "exists", "--overwrite")
    assert spec_path.read_bytes() == before
    assert_one_line_error(cli("init", mixed_csv, "--target", "sex", "--sensitive", "sex"), "that is the target")
    assert_one_line_error(cli("init", mixed_csv.parent, "--target", "y"), "a folder; init reads a table (.csv)",
                          "data: {name: images, path: ")


def test_positive_label_spelled_as_yaml_reads_it(tmp_path):
    from netwright.fairness.groups import positive_index

    assert positive_index(["no", "yes"], load_spec({"data": {"name": "iris"}, "model": {"name": "mlp"},
                                                    "fairness": {"positive_label": True}}).fairness.positive_label) == 1
    assert positive_index(["0", "1"], "1") == 1 and positive_index(["a", "b"], None) == 1
    with pytest.raises(netwright.NetwrightError, match="not a class"):
        positive_index(["a", "b"], "c")


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=12), st.lists(st.text(max_size=30), min_size=1, max_size=60))
def test_column_inference_takes_any_cells(name, cells):
    col = infer_column(name, cells)
    assert col.kind in ("numeric", "categorical", "id", "text")
    assert col.missing == sum(c.strip() in MISSING_TOKENS or c.strip() in col.markers for c in cells)
    assert not col.markers or (col.kind == "numeric" and not any(ch.isdigit() for m in col.markers for ch in m))
    if all(c.strip() for c in cells) and len({c.strip() for c in cells}) <= 10:
        assert col.kind in ("numeric", "categorical")  # few distinct values are never ids or text


def test_init_takes_dates_as_inputs_and_says_how(cli, tmp_path):
    rng = np.random.default_rng(0)
    rows = [[f"2024-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}", f"{rng.normal():.3f}",
             str(int(rng.integers(0, 2)))] for _ in range(60)]
    path = write_rows(tmp_path / "visits.csv", ["day", "spend", "returned"], rows)
    assert cli("init", path, "--target", "returned").code == 0
    text = path.with_suffix(".yaml").read_text()
    assert yaml.safe_load(text)["data"]["features"] == ["day", "spend"]
    assert "feature, read as dates: year, month, day, weekday" in text


def test_init_keeps_a_money_column_with_a_few_markers_and_weighs_a_rare_class(cli, tmp_path):
    """A money column with 'n/a' and '?' cells is a number column (not an ID left out), its
    markers go to data.na_values; a target whose rarer class is 3% of the rows gets balanced class
    weights and an epoch kept by macro F1 (which sees the rare class)."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(1000):
        spend = "n/a" if i % 97 == 5 else "?" if i % 151 == 7 else f"{rng.lognormal(3, 1):.2f}"
        rows.append([spend, str(int(rng.integers(18, 80))), "1" if i % 33 == 0 else "0"])
    path = write_rows(tmp_path / "shop.csv", ["spend", "age", "left"], rows)
    assert cli("init", path, "--target", "left").code == 0
    text = path.with_suffix(".yaml").read_text()
    spec = yaml.safe_load(text)
    assert spec["data"]["features"] == ["spend", "age"] and spec["data"]["na_values"] == ["?"]
    assert spec["train"]["class_weight"] == "balanced" and spec["train"]["monitor"] == "val_f1"
    assert "'1' is 3.1% of the rows" in text  # 31 of 1000
    assert cli("train", path.with_suffix(".yaml"), "-q", "--set", "train.epochs=2").code == 0


def test_init_reads_money_written_with_signs_as_numbers_and_logs_a_long_tail(cli, tmp_path):
    """'$1,250.00' cells are numbers (not an ID), with a long tail: init writes transform: log for
    that column (and not for a column of ages), and the spec trains as written."""
    rng = np.random.default_rng(0)
    rows = [[f"${rng.lognormal(6, 1.2):,.2f}", str(int(rng.integers(18, 80))), str(i % 2)] for i in range(400)]
    path = write_rows(tmp_path / "shop.csv", ["spend", "age", "left"], rows)
    assert cli("init", path, "--target", "left").code == 0
    text = path.with_suffix(".yaml").read_text()
    spec = yaml.safe_load(text)
    assert spec["data"]["features"] == ["spend", "age"] and spec["data"]["transform"] == {"spend": "log"}
    assert "written with '$' ','" in text and "long tail" in text
    assert cli("train", path.with_suffix(".yaml"), "-q", "--set", "train.epochs=2").code == 0


def test_init_leaves_balanced_classes_unweighted(cli, mixed_csv):
    assert cli("init", mixed_csv, "--target", "approved").code == 0
    spec = yaml.safe_load(mixed_csv.with_suffix(".yaml").read_text())
    assert "class_weight" not in spec["train"] and "monitor" not in spec["train"]


def test_a_spec_files_data_path_is_read_from_its_folder_and_init_writes_it_so(cli, tmp_path, monkeypatch):
    """``init data/people.csv`` run from a project folder writes ``data/people.yaml`` whose path
    works from that folder, from the spec's folder and from anywhere else (read from the spec's
    folder, as plugins are); a spec written before the rule (a path from the current folder) still
    loads; validate refuses a path found from neither."""
    rng = np.random.default_rng(0)
    (tmp_path / "data").mkdir()
    path = write_rows(tmp_path / "data" / "people.csv", ["age", "y"],
                      [[str(int(rng.integers(18, 80))), str(i % 2)] for i in range(40)])
    monkeypatch.chdir(tmp_path)
    assert cli("init", "data/people.csv", "--target", "y").code == 0
    spec_file = tmp_path / "data" / "people.yaml"
    assert yaml.safe_load(spec_file.read_text())["data"]["path"] == "people.csv"
    for where in (tmp_path, tmp_path / "data", tmp_path.parent):
        monkeypatch.chdir(where)
        assert load_spec(spec_file).data.params["path"] == str(path.resolve())
    old = tmp_path / "data" / "old.yaml"  # written from the project folder, the old way
    old.write_text(yaml.safe_dump({"data": {"name": "csv", "path": "data/people.csv", "target": "y"},
                                   "model": {"name": "mlp"}}))
    monkeypatch.chdir(tmp_path)
    assert Path(load_spec(old).data.params["path"]).resolve() == path.resolve()
    monkeypatch.chdir(tmp_path.parent)
    assert cli("validate", old).code == 2
