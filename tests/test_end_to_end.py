"""End-to-end accuracy targets (a few seconds each, fixed seeds, stated splits)."""

from __future__ import annotations

import pytest

import netwright
from conftest import ROOT


@pytest.mark.slow
def test_demo_spec_reaches_98_percent_on_digits():
    """The demo: CNN on the bundled digits, stratified 70/15/15 split, seed 0."""
    run = netwright.train(ROOT / "examples" / "digits_cnn.yaml", name="demo", progress="quiet")
    result = run.evaluate()
    assert result["n"] == 270
    assert result["metrics"]["accuracy"] >= 0.98


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mlp", "rnn", "transformer"])
def test_other_families_learn_digits(model):
    """Every family learns the digits well beyond chance (10%) in a short run."""
    spec = {"data": {"name": "digits"}, "model": {"name": model},
            "train": {"epochs": 8, "optimizer": {"name": "adam", "lr": 0.003}}}
    run = netwright.train(spec, name=model, progress="quiet")
    assert run.evaluate(plots=False)["metrics"]["accuracy"] >= 0.85
