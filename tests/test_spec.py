from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from netwright import Spec, SpecError, load_spec
from netwright.errors import NetwrightError
from conftest import ROOT

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def test_defaults_are_filled_in():
    spec = load_spec({"data": {"name": "digits"}, "model": {"name": "cnn"}})
    d = spec.to_dict()
    assert d["train"]["optimizer"]["name"] == "adam"
    assert d["model"]["channels"] == [32, 64]  # the builder's own default, resolved
    assert d["data"]["val"] == 0.15
    # the resolved spec round-trips: loading it again changes nothing
    assert load_spec(yaml.safe_load(spec.to_yaml())).to_dict() == d


def test_overrides_parse_values_as_yaml(tmp_path: Path):
    p = tmp_path / "s.yaml"
    p.write_text("data: {name: digits}\nmodel: {name: cnn}\n")
    spec = load_spec(p, ["train.optimizer.lr=0.05", "model.channels=[8, 16]", "train.augment.flip=true"])
    assert spec.train.optimizer.lr == 0.05
    assert spec.model.params["channels"] == [8, 16]
    assert spec.train.augment.flip is True


def test_every_problem_is_reported_at_once_with_its_path():
    raw = {
        "data": {"name": "digits", "val": 2},
        "model": {"name": "cnn", "channels": "many", "kernal_size": 3},
        "train": {"epochs": 0, "optimizer": {"name": "adamm", "lr": -1}, "batchsize": 3},
    }
    with pytest.raises(SpecError) as e:
        load_spec(raw)
    problems = e.value.problems
    text = "\n".join(problems)
    for path in ("data.val", "model.channels", "model.kernal_size", "train.epochs", "train.optimizer.name",
                 "train.optimizer.lr", "train.batchsize"):
        assert any(p.startswith(path + ":") for p in problems), (path, text)
    assert "did you mean 'kernel_size'" in text
    assert "did you mean 'batch_size'" in text
    assert "'sgd', 'adam', 'adamw' or 'rmsprop'" in text


@pytest.mark.parametrize("section,name,known", [("data", "digitz", "digits"), ("model", "cnnn", "cnn")])
def test_unknown_registry_names_list_the_known_ones(section, name, known):
    raw = {"data": {"name": "digits"}, "model": {"name": "cnn"}}
    raw[section] = {"name": name}
    with pytest.raises(SpecError) as e:
        load_spec(raw)
    msg = str(e.value)
    assert f"{section}.name" in msg and f"did you mean '{known}'" in msg and "known:" in msg


def test_inconsistent_options_are_errors():
    with pytest.raises(SpecError, match="nesterov needs"):
        load_spec({"data": {"name": "iris"}, "model": {"name": "mlp"},
                   "train": {"optimizer": {"name": "adam", "nesterov": True}}})
    with pytest.raises(SpecError, match="applies to image"):
        load_spec({"data": {"name": "iris"}, "model": {"name": "mlp"}, "train": {"augment": {"rotate": 10}}})
    with pytest.raises(SpecError, match="leaves too little"):
        load_spec({"data": {"name": "iris", "val": 0.5, "test": 0.45}, "model": {"name": "mlp"}})


def test_malformed_yaml_names_line_and_column(tmp_path: Path):
    p = tmp_path / "bad.yaml"
    p.write_text("data:\n  name: digits\n model: [\n")
    with pytest.raises(NetwrightError, match=r"malformed YAML at line \d+, column \d+"):
        load_spec(p)


def test_override_syntax_errors():
    with pytest.raises(NetwrightError, match="expected KEY=VALUE"):
        load_spec({"data": {"name": "iris"}, "model": {"name": "mlp"}}, ["train.epochs"])
    with pytest.raises(NetwrightError, match="is a value, not a section"):
        load_spec({"data": {"name": "iris"}, "model": {"name": "mlp"}}, ["model.name.x=1"])


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_spec_validates(path: Path):
    spec = load_spec(path)
    assert isinstance(spec, Spec)
