"""The contract over the registry of kinds: every kind names itself, lists only known verbs, has
a tiny example spec that validates and whose model it resolves to, and refuses the verbs it does
not take in one line that says what it is (and, where it has a hint, what to do instead)."""

from __future__ import annotations

import pytest

from netwright.errors import NetwrightError
from netwright.run import Run
from netwright.spec import load_spec
from netwright.tasks import TASKS, VERBS


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_kind_keeps_the_contract(name):
    kind = TASKS[name]
    assert kind.name == name and kind.title and kind.plural
    assert {"evaluate", "report"} <= kind.stages <= VERBS, kind.stages - VERBS
    spec = load_spec(kind.example())  # a tiny spec of this kind, valid as written
    assert spec.train.epochs <= 2
    assert kind.default_monitor.startswith("val_") and kind.metric_names
    for verb in sorted(VERBS - kind.stages):
        with pytest.raises(NetwrightError) as e:
            kind.require(verb, Run("runs/x"))
        message = str(e.value)
        assert "\n" not in message and message.startswith(f"{verb} applies to ") and kind.title in message


def test_the_verbs_and_the_kinds_they_apply_to_read_as_a_sentence():
    assert TASKS["classification"].applies_to("calibrate") == "classifiers, node classifiers and text classifiers"
    assert "GANs" in TASKS["adversarial"].applies_to("sample")
