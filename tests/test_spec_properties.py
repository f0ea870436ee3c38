"""Property-based tests of the spec loader: whatever a user writes, the answer is a Spec or one
NetwrightError (the CLI's one line, exit 2), never another exception, and never slowly."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netwright.errors import NetwrightError
from netwright.spec import apply_override, load_spec

SECTIONS = ["name", "seed", "data", "model", "train", "fairness", "continual", "card"]
KEYS = SECTIONS + ["optimizer", "lr", "epochs", "batch_size", "hidden", "channels", "augment", "schedule",
                   "val", "test", "dropout", "precision", "sensitive", "early_stopping", "patience", "x"]
NAMES = st.sampled_from(["digits", "iris", "mlp", "cnn", "rnn", "adam", "sgd", "auto", "bf16", "nonsense", ""])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), NAMES)
VALUES = st.recursive(SCALARS, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.sampled_from(KEYS), kids, max_size=4)), max_leaves=12)
SPECS = st.fixed_dictionaries({}, optional={s: VALUES for s in SECTIONS})
NEAR = st.fixed_dictionaries({"data": st.fixed_dictionaries({"name": NAMES}, optional={"val": VALUES, "x": VALUES}),
                              "model": st.fixed_dictionaries({"name": NAMES}, optional={"hidden": VALUES}),
                              "train": st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4)})


def accepted_or_one_error(source) -> None:
    try:
        load_spec(source)
    except NetwrightError as e:
        assert str(e).strip() and len(str(e)) < 100_000


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(SPECS, NEAR))
def test_any_mapping_is_a_spec_or_one_error(raw: dict) -> None:
    accepted_or_one_error(raw)


@settings(max_examples=100, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=200))
def test_any_text_file_is_a_spec_or_one_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    accepted_or_one_error(path)


@settings(max_examples=100, deadline=2000)
@given(st.text(alphabet=st.sampled_from(list("abtrain.=[]{}:,- 01e&*!")), max_size=40))
def test_any_override_is_applied_or_one_error(item: str) -> None:
    raw = {"data": {"name": "iris"}, "model": {"name": "mlp"}, "train": {"epochs": 1}}
    try:
        apply_override(raw, item)
    except NetwrightError:
        return
    accepted_or_one_error(raw)


@settings(max_examples=50, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(VALUES)
def test_dumped_yaml_round_trips_to_the_same_answer(tmp_path: Path, value) -> None:
    raw = {"data": {"name": "iris", "val": value}, "model": {"name": "mlp"}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    accepted_or_one_error(path)
