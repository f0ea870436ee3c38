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


# ---- the supervised kinds' own pieces, called directly on planted outputs (no training)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

from netwright.data.info import DataInfo  # noqa: E402
from netwright.spec import TrainSpec  # noqa: E402
from netwright.tasks import task_class  # noqa: E402
from netwright.tasks.classification import balanced_weights, class_report  # noqa: E402

NAMES = ["a", "b", "c", "d", "e"]


def classifier(train: TrainSpec | None = None, **context):
    info = DataInfo(name="planted", task="classification", modality="tabular", input_shape=(4,),
                    num_classes=len(NAMES), class_names=NAMES)
    return task_class(info, "mlp")(info, train, **context)


def regressor(target_name: str | None = "progression"):
    info = DataInfo(name="planted", task="regression", modality="tabular", input_shape=(3,), target_name=target_name,
                    preprocess={"target": {"mean": 150.0, "std": 70.0}})
    return task_class(info, "mlp")(info)


def test_class_report_per_class_scores_and_balanced_accuracy_are_scikit_learns():
    """Planted predictions with every edge a per-class score has: a class with one example,
    predicted once and right (precision and recall 1 from a count of 1), a class never predicted
    (precision 0 by scikit-learn's zero_division=0), a class whose precision and recall add up to
    less than 1, and a class predicted once but absent from the targets (left out of the balanced
    accuracy, as scikit-learn leaves it out)."""
    target = torch.tensor([0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 3, 0, 0])
    pred = torch.tensor([0, 0, 0, 2, 4, 0, 0, 2, 0, 0, 3, 2, 0])
    logits = torch.nn.functional.one_hot(pred, 5).double() * 2 + torch.linspace(-0.1, 0.1, 65).reshape(13, 5)
    assert (logits.argmax(1) == pred).all()
    got = class_report(logits, target, 5, NAMES)
    p, r, f, s = skm.precision_recall_fscore_support(target, pred, labels=range(5), zero_division=0)
    assert got["class_names"] == NAMES
    assert got["per_class"] == [{"class": n, "precision": pytest.approx(p[i]), "recall": pytest.approx(r[i]),
                                 "f1": pytest.approx(f[i]), "support": int(s[i])} for i, n in enumerate(NAMES)]
    assert got["confusion_matrix"] == skm.confusion_matrix(target, pred, labels=range(5)).tolist()
    m = got["metrics"]
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):
        assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(target, pred))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(target, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(target, pred, average="macro", labels=[0, 1, 2, 3, 4]))
    assert m["loss"] == pytest.approx(skm.log_loss(target, torch.softmax(logits, 1).numpy(), labels=range(5)))


def test_the_majority_class_baseline_keeps_classes_missing_from_the_train_split():
    """Train labels without classes 3 and 4, test labels with them: the baseline is the train
    class shares (a share of 0 taken as 1e-15, as documented), its accuracy the majority class's
    share of the test split (scikit-learn's DummyClassifier), its loss computed here by hand."""
    from sklearn.dummy import DummyClassifier

    train_y = torch.tensor([0, 1, 1, 2, 1, 0, 2, 1])
    target = torch.tensor([1, 0, 3, 1, 4, 2, 1])
    got = classifier().trivial_baseline(train_y, target)
    dummy = DummyClassifier(strategy="prior").fit(np.zeros((8, 1)), train_y.numpy())
    assert set(got) == {"name", "fitted_on", "detail", "metrics"} and got["fitted_on"] == "train"
    assert "'b'" in got["detail"]
    assert got["metrics"]["accuracy"] == pytest.approx(dummy.score(np.zeros((7, 1)), target.numpy()))
    share = np.maximum(np.bincount(train_y.numpy(), minlength=5) / 8, 1e-15)
    share /= share.sum()
    assert got["metrics"]["loss"] == pytest.approx(-np.log(share[target.numpy()]).mean(), rel=1e-9)


def test_balanced_class_weights_are_scikit_learns_and_zero_for_an_absent_class():
    from sklearn.utils.class_weight import compute_class_weight

    y = torch.tensor([0] * 7 + [1] * 3 + [2])  # class 2: a single example
    assert balanced_weights(y, 3).numpy() == pytest.approx(
        compute_class_weight("balanced", classes=np.arange(3), y=y.numpy()))
    y = torch.tensor([0] * 6 + [1] * 2 + [2])  # classes 3 and 4 absent
    assert balanced_weights(y, 5).tolist() == pytest.approx([9 / 30, 9 / 10, 9 / 5, 0.0, 0.0])


def test_explain_target_is_the_chosen_class_or_a_one_line_refusal():
    task, outputs = classifier(), torch.randn(6, 5)
    for chosen in (0, 4):
        got = task.target(outputs, chosen)
        assert got.dtype == torch.long and got.tolist() == [chosen] * 6
    assert task.target(outputs).tolist() == outputs.argmax(1).tolist()
    for bad in (-1, 5):
        with pytest.raises(NetwrightError) as e:
            task.target(outputs, bad)
        assert str(e.value) == f"--target {bad}: classes are 0..4"


def test_a_regressors_explained_output_monitored_value_and_label():
    task, outputs = regressor(), torch.tensor([[1.5], [-2.0], [0.25]])
    got = task.target(outputs)
    assert got.dtype == torch.long and got.tolist() == [0, 0, 0]
    assert task.watched(outputs, 0).tolist() == [1.5, -2.0, 0.25]
    assert task.label(torch.tensor(3.5)) == 3.5
    assert "progression" in task.describe(task.info) and "the target" in task.describe(regressor(None).info)


def test_regression_loss_metrics_baseline_and_ensemble_are_scikit_learns():
    """Standardised outputs ``(N, 1)``: the loss is the mean squared error on the standardised
    scale; MAE, RMSE and R² in the target's units (x 70 + 150); the train-mean baseline is
    DummyRegressor's; an ensemble scores its members' mean prediction."""
    from sklearn.dummy import DummyRegressor

    task = regressor()
    rng = np.random.default_rng(0)
    y = torch.from_numpy(rng.normal(size=20))
    outs = [y[:, None] + torch.from_numpy(rng.normal(0, s, (20, 1))) for s in (0.3, 0.6)]
    assert float(task.loss(outs[0], y)) == pytest.approx(skm.mean_squared_error(y, outs[0][:, 0]))
    units = lambda t: t.numpy() * 70 + 150  # noqa: E731
    for got, pred in ((task.metrics({"output": outs[0], "target": y}), units(outs[0][:, 0])),
                      (task.ensemble_metrics([{"output": o, "target": y} for o in outs]),
                       units((outs[0][:, 0] + outs[1][:, 0]) / 2))):
        assert got["mae"] == pytest.approx(skm.mean_absolute_error(units(y), pred))
        assert got["rmse"] == pytest.approx(skm.root_mean_squared_error(units(y), pred))
        assert got["r2"] == pytest.approx(skm.r2_score(units(y), pred))
        assert got["loss"] == pytest.approx(skm.mean_squared_error(y, (pred - 150) / 70))
    train_y = torch.from_numpy(rng.normal(size=30))
    base = task.trivial_baseline(train_y, y)
    dummy = DummyRegressor().fit(np.zeros((30, 1)), units(train_y)).predict(np.zeros((20, 1)))
    assert set(base) == {"name", "fitted_on", "detail", "metrics"} and base["fitted_on"] == "train"
    assert base["detail"] == f"always {dummy[0]:.6g}"
    assert base["metrics"]["mae"] == pytest.approx(skm.mean_absolute_error(units(y), dummy))


def train_spec(**train) -> TrainSpec:
    return TrainSpec(**{"optimizer": {"name": "sgd", "lr": 0.5, "momentum": 0.0}, "threads": 1, **train})


@pytest.mark.parametrize("train", [{"l1": 0.05}, {"l2": 0.2}, {"l1": 0.03, "l2": 0.1}, {"grad_clip": 0.05},
                                   {"label_smoothing": 0.2}])
def test_a_classifier_step_is_the_documented_sgd_step(train):
    """One step of plain SGD through ``train_step`` moves the weights by ``lr`` times the gradient of
    a hand-written objective: cross-entropy (label smoothing: ``(1 - e) CE + e x mean over classes of
    -log p``) plus ``l1 sum|W| + l2 sum W^2`` over the weight matrices only (not the biases); with
    ``grad_clip`` the whole gradient scaled to that norm."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 5)).double()
    x, y = torch.randn(16, 4, dtype=torch.float64), torch.randint(0, 5, (16,))
    spec = train_spec(**train)
    ref = [p.detach().clone().requires_grad_() for p in model.parameters()]
    logp = torch.log_softmax(torch.tanh(x @ ref[0].T + ref[1]) @ ref[2].T + ref[3], 1)
    e = spec.label_smoothing
    loss = -(1 - e) * logp[torch.arange(16), y].mean() - e * logp.mean()
    weights = (ref[0], ref[2])
    objective = loss + spec.l1 * sum(w.abs().sum() for w in weights) + spec.l2 * sum((w ** 2).sum() for w in weights)
    grads = torch.autograd.grad(objective, ref)
    if spec.grad_clip:
        norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
        assert norm > 4 * spec.grad_clip  # the clip binds
        grads = [g * spec.grad_clip / (norm + 1e-6) for g in grads]
    task = classifier(spec)
    got = task.train_step(model, (x, y), task.optimizers(model))
    assert float(got) == pytest.approx(float(loss.detach()), rel=1e-12)  # the reported loss leaves the penalties out
    for p, r, g in zip(model.parameters(), ref, grads):
        assert p.detach() == pytest.approx((r - 0.5 * g).detach(), abs=1e-12)


def test_a_classifier_step_under_autocast_computes_in_bf16():
    """With an autocast context the forward pass runs in bf16 and the loss is cross-entropy of its
    output cast back to float32 (as computed here under the same context), not the float32 loss."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 5))
    x, y = torch.randn(32, 4) * 3, torch.randint(0, 5, (32,))
    with torch.no_grad():
        full = float(torch.nn.functional.cross_entropy(model(x), y))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = float(torch.nn.functional.cross_entropy(model(x).float(), y))
    assert abs(bf16 - full) > 1e-5  # the two are told apart
    task = classifier(train_spec(), autocast=lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    assert float(task.train_step(model, (x, y), task.optimizers(model))) == pytest.approx(bf16, abs=1e-7)


def test_evaluate_puts_the_kinds_own_baseline_beside_the_majority_class(tmp_path):
    """A node classifier (karate club, one epoch): ``evaluate`` reports the split it scored and its
    size, ``baseline`` is the kind's own (logistic regression on each node's edges, fitted on the
    train nodes and scored on the test nodes: recomputed here with scikit-learn from the graph)
    and ``trivial_baseline`` the train split's majority class (scikit-learn's DummyClassifier)."""
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression

    import netwright
    from netwright.tasks.node_classification import adjacency

    run = netwright.train({"data": {"name": "karate_club", "val": 0}, "model": {"name": "gcn", "hidden": [8]},
                           "train": {"epochs": 1, "threads": 1}}, name="karate", runs_dir=tmp_path, progress="quiet")
    result = netwright.evaluate(run, plots=False)
    data = run.load_data()
    assert (result["split"], result["n"], result["task"]) == ("test", len(data.test.y), "classification")
    a = adjacency(data.info.preprocess, symmetric=False)
    edges = np.concatenate([a, a.T], axis=1)
    train, test = (data.train.x.argmax(1).numpy(), data.train.y.numpy()), (data.test.x.argmax(1).numpy(), data.test.y.numpy())
    fitted = LogisticRegression(max_iter=5000).fit(edges[train[0]], train[1])
    assert result["baseline"]["fitted_on"] == "train"
    assert result["baseline"]["accuracy"] == pytest.approx(fitted.score(edges[test[0]], test[1]))
    dummy = DummyClassifier(strategy="prior").fit(train[0][:, None], train[1])
    assert result["trivial_baseline"]["name"] == "majority class"
    assert result["trivial_baseline"]["metrics"]["accuracy"] == pytest.approx(dummy.score(test[0][:, None], test[1]))


def test_class_rows_without_a_temperature_are_the_models_own_softmax():
    """``class_rows`` called without a temperature (a policy's actions decode this way) gives
    scipy's softmax of the raw outputs, and the most likely class as the label."""
    from scipy.special import softmax

    from netwright.tasks.classification import class_rows

    logits = np.random.default_rng(3).normal(0, 3, (6, 5))
    rows = class_rows(NAMES, logits)
    assert np.array([list(r["probabilities"].values()) for r in rows]) == pytest.approx(softmax(logits, 1), abs=1e-6)
    assert [r["label"] for r in rows] == [NAMES[i] for i in logits.argmax(1)]
