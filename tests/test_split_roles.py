"""Which split each choice reads: a choice is made on the validation split and reported on the
test split, which nothing reads before the choice is made."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score

import netwright
from netwright.data.info import Dataset

FAIR_SPEC = {"data": {"name": "biased", "val": 0.15, "test": 0.2}, "model": {"name": "mlp", "hidden": [16]}, "train": {"epochs": 3, "threads": 1},
             "fairness": {"sensitive": ["group"], "positive_label": "approved"}}


def test_mitigate_chooses_on_validation_before_it_reads_the_test_split(monkeypatch):
    import netwright.stages.mitigate as mitigate_stage

    run = netwright.train(FAIR_SPEC, name="fair", progress="quiet")
    data = run.load_data()
    sizes = {len(data.val.y): "val", len(data.test.y): "test"}
    assert len(sizes) == 2  # the two splits are told apart by their sizes below
    seen: list[str] = []
    split, decisions, judge = Dataset.split, mitigate_stage.decisions, mitigate_stage.judge
    monkeypatch.setattr(Dataset, "split", lambda self, name: seen.append(f"split {name}") or split(self, name))
    monkeypatch.setattr(mitigate_stage, "decisions",
                        lambda model, x, positive: seen.append(f"scored {sizes.get(len(x), len(x))}")
                        or decisions(model, x, positive))
    monkeypatch.setattr(mitigate_stage, "judge", lambda *a, **k: seen.append("judge") or judge(*a, **k))
    result = netwright.mitigate(run, methods=["reweighing", "thresholds"])
    first_judge = seen.index("judge")
    assert not [s for s in seen[:first_judge] if "test" in s], seen
    assert "scored val" in seen[:first_judge] and "scored test" in seen[first_judge:], seen
    assert result["judgement"]["chosen_on"] == "val" and result["split"] == "test"
    assert "on the validation split" in result["judgement"]["reason"]
    # the reported numbers are the test split's, as scikit-learn counts them for the original model
    model, positive = run.load_model(), data.info.class_names.index("approved")
    with np.errstate(all="ignore"):
        pred = model(data.test.x).argmax(1).numpy() == positive
    original = result["rows"][0]
    assert original["label"] == "original"
    assert original["accuracy"] == pytest.approx(accuracy_score(data.test.y.numpy() == positive, pred))
    assert original["validation"]["accuracy"] != original["accuracy"]


def test_mitigate_without_a_validation_split_is_refused_in_one_line():
    run = netwright.train({**FAIR_SPEC, "data": {"name": "biased", "val": 0}}, name="noval", progress="quiet")
    with pytest.raises(netwright.NetwrightError, match="no validation split: train it with data.val above 0"):
        netwright.mitigate(run, methods=["reweighing"])
