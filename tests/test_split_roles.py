"""Which split each choice reads: a choice is made on the validation split and reported on the
test split, which nothing reads before the choice is made."""

from __future__ import annotations

import numpy as np
import torch
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


# ---- the validation split's roles: the kept epoch, the temperature and the conformal threshold

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from netwright.data.info import DataInfo  # noqa: E402
from netwright.data.roles import role_rows  # noqa: E402
from netwright.tasks import task_class  # noqa: E402

THIRDS = {"select": 1 / 3, "temperature": 1 / 3, "conformal": 1 / 3}


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 5000), st.integers(0, 2**31), st.sampled_from([THIRDS, {"select": 0.5, "conformal": 0.5}]))
def test_roles_divide_a_split_into_disjoint_parts_of_their_shares(n, seed, shares):
    rows = role_rows(n, shares, seed)
    assert set(rows) == set(shares)
    every = np.concatenate(list(rows.values()))
    assert sorted(every.tolist()) == list(range(n))  # each position in exactly one role
    for role, idx in rows.items():
        assert abs(len(idx) - shares[role] * n) <= 1 and (np.diff(idx) > 0).all()
    assert all((role_rows(n, shares, seed)[r] == rows[r]).all() for r in rows)  # the same rows every time


def test_the_role_rows_change_with_the_split_seed_and_mix_the_split():
    a, b = role_rows(900, THIRDS, 0)["conformal"], role_rows(900, THIRDS, 1)["conformal"]
    assert 0.2 < len(np.intersect1d(a, b)) / 300 < 0.5  # about a third in common, as for independent draws
    assert 250 < a.mean() < 650 and a.min() < 30 and a.max() > 870  # from the whole split, not a block of it


def test_a_default_classifier_fits_epoch_temperature_and_threshold_on_disjoint_rows(monkeypatch, tmp_path):
    """With the defaults (keep: best on val_loss) and ``train.calibrate: true``, then ``evaluate
    --coverage``: the rows each choice read are recorded at the kind's ``val_rows``; they are
    disjoint, and each number is recomputed here from the rows it claims."""
    from netwright.tasks.base import Kind

    asked: dict[str, list] = {}
    val_rows = Kind.val_rows
    monkeypatch.setattr(Kind, "val_rows", lambda self, n, role, seed: asked.setdefault(role, []).append(
        rows := val_rows(self, n, role, seed)) or rows)
    spec = {"data": {"name": "digits", "val": 0.3, "split_seed": 7}, "model": {"name": "mlp", "hidden": [32]},
            "train": {"epochs": 6, "threads": 1, "calibrate": True, "optimizer": {"name": "adam", "lr": 0.01}}}
    run = netwright.train(spec, name="roles", runs_dir=tmp_path, progress="quiet")
    conformal = netwright.evaluate(run, plots=False, coverage=0.9)["conformal"]
    assert set(asked) == {"select", "temperature", "conformal"} and len(asked["select"]) == 6  # once an epoch
    rows = {role: got[0] for role, got in asked.items()}
    assert all((r == rows[role]).all() for role, got in asked.items() for r in got)
    n_val = run.info.splits["val"]
    assert sorted(np.concatenate(list(rows.values())).tolist()) == list(range(n_val))  # disjoint, all rows
    assert {k: v.tolist() for k, v in rows.items()} == {k: v.tolist() for k, v in role_rows(n_val, THIRDS, 7).items()}

    data, model = run.load_data(), run.load_model()
    with torch.no_grad():
        logits = model(data.val.x).double()
    y = data.val.y
    # the kept epoch's val_loss is the final (best) weights' cross-entropy on the select rows only
    history, kept = run.metrics(), run.read_json("train.json")["best_epoch"]
    val_loss = next(r["val_loss"] for r in history if r["epoch"] == kept)
    sel = rows["select"]
    assert val_loss == pytest.approx(float(torch.nn.functional.cross_entropy(logits[sel], y[sel])), rel=1e-5)
    assert val_loss != pytest.approx(float(torch.nn.functional.cross_entropy(logits, y)), rel=1e-5)
    cal = run.read_json("calibration.json")
    assert cal["n"] == len(rows["temperature"])
    assert cal["val_nll_before"] == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits[rows["temperature"]], y[rows["temperature"]])), rel=1e-9)
    assert conformal["n"] == len(rows["conformal"])


def planted_candidates(kind: str, rng: np.random.Generator, n: int, k: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Targets and ``k`` equally good models' outputs (the epochs a run chooses between): the
    truth plus noise drawn afresh for each, so the one that looks best on some rows is only lucky there."""
    if kind == "classification":
        y = torch.from_numpy(rng.integers(0, 5, n))
        truth = torch.nn.functional.one_hot(y, 5).double() * 1.5
        return y, [truth + torch.from_numpy(rng.normal(size=(n, 5))) * 1.5 for _ in range(k)]
    y = torch.from_numpy(rng.normal(size=n))
    return y, [y[:, None] + torch.from_numpy(rng.standard_t(3, size=(n, 1))) for _ in range(k)]


@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_default_roles_keep_conformal_coverage_where_reusing_the_selection_rows_breaks_it(kind):
    """The kind's own pieces in the default order: over 400 planted splits (split seeds 0..399) of
    1,500 validation rows, the kept "epoch" is the one of 30 equally good candidates with the
    lowest loss on the ``select`` rows (``metrics()["loss"]``, as ``keep: best`` on val_loss
    does), the threshold is fitted with ``conformal_threshold`` on the ``conformal`` rows, and
    coverage is counted on 2,000 test rows. The mean coverage must be at least the target minus
    0.5 points at 0.8, 0.9 and 0.95.

    Power: a split's coverage has a standard deviation of about sqrt(a(1-a)/500 + a(1-a)/2000)
    (a = 1 - target; measured here: at most 0.021), so the mean of 400 has a standard error of at
    most 0.00105: a method right on its target fails with probability below 1e-5 (4.7 standard
    errors), and one a full point short passes with probability below 1e-5 too. Fitting the threshold
    on the ``select`` rows instead (what sharing one validation split does) is planted beside it
    and fails the same bound at every level.
    """
    info = DataInfo(name="planted", task=kind, modality="tabular", input_shape=(1,),
                    num_classes=5 if kind == "classification" else None,
                    class_names=list("abcde") if kind == "classification" else None)
    task = task_class(info, "mlp")(info)
    n_val, n_test, levels = 1500, 2000, (0.8, 0.9, 0.95)
    kept_roles, reused = {c: [] for c in levels}, {c: [] for c in levels}
    for seed in range(400):
        y, candidates = planted_candidates(kind, np.random.default_rng(seed), n_val + n_test, 30)
        sel, conf = task.val_rows(n_val, "select", seed), task.val_rows(n_val, "conformal", seed)
        assert not np.intersect1d(sel, conf).size and len(conf) >= 500
        kept = min(candidates, key=lambda out: task.metrics({"output": out[sel], "target": y[sel]})["loss"])
        test = {"output": kept[n_val:], "target": y[n_val:]}
        for coverage in levels:
            for rows, into in ((conf, kept_roles), (sel, reused)):
                fit, _ = task.conformal_threshold(kept[rows], y[rows], coverage)
                into[coverage].append(task.score_conformal(test, fit["q"])["coverage"])
    for coverage in levels:
        assert np.mean(kept_roles[coverage]) >= coverage - 0.005, (coverage, np.mean(kept_roles[coverage]))
        assert np.mean(reused[coverage]) < coverage - 0.005, (coverage, np.mean(reused[coverage]))


def test_a_tuning_studys_best_trial_is_scored_on_the_test_split_without_pictures(tmp_path):
    """``tune_score.test_metrics`` on a trained trial: the numbers are the test split's (accuracy
    from scikit-learn on the model's test predictions), only numbers are kept, and scoring it
    draws no pictures into the trial's folder (a study scores its best trial quietly)."""
    from netwright.stages.tune_score import test_metrics

    run = netwright.train({"data": {"name": "iris"}, "model": {"name": "mlp", "hidden": [8]},
                           "train": {"epochs": 2, "threads": 1}}, name="trial-0", runs_dir=tmp_path, progress="quiet")
    got = test_metrics(run.path)
    data, model = run.load_data(), run.load_model()
    with torch.no_grad():
        pred = model(data.test.x).argmax(1).numpy()
    assert got["accuracy"] == pytest.approx(accuracy_score(data.test.y.numpy(), pred))
    assert all(isinstance(v, (int, float)) for v in got.values()) and {"loss", "f1", "ece"} <= set(got)
    assert not list(run.path.rglob("*.png")), list(run.path.rglob("*.png"))
