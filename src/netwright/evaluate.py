"""The ``evaluate`` stage: test metrics, confusion matrix and calibration -> ``eval.json``."""

from __future__ import annotations

import os
from typing import Any

import torch

from .errors import NetwrightError
from .metrics import confusion_matrix, expected_calibration_error, macro_f1, regression_metrics
from .run import Run, writes_run
from .tasks import SupervisedTask
from .training.trainer import collect_outputs


@writes_run("netwright evaluate")
def evaluate(run: Run | str | os.PathLike, split: str = "test", plots: bool = True,
             batch_size: int = 1024, coverage: float | None = None) -> dict[str, Any]:
    """Score a run's model on one split of its data and write ``eval.json`` (+ ``eval/*.png``).

    Classification: accuracy, macro F1, cross-entropy, expected calibration error with its
    reliability table, confusion matrix, per-class precision/recall/F1. Regression: MAE,
    RMSE, R² in the target's units. Beside them, ``baseline``: the same metrics of the trivial
    predictor fitted on the train split (the majority class with the train class shares as its
    probabilities; the train mean); a language model's is a unigram model of the train tokens.
    With ``calibration.json`` (``netwright calibrate``): ECE, Brier score and NLL before and
    after temperature scaling. ``coverage`` (e.g. 0.9): split-conformal prediction sets or
    intervals fitted on the validation split, their empirical coverage and size on ``split``.
    """
    run = run if isinstance(run, Run) else Run.open(run)
    if coverage is not None:
        from .conformal import check_coverage

        check_coverage(coverage)
        if split == "val":
            raise NetwrightError("--coverage fits its threshold on the validation split, so coverage there holds by "
                                 "construction; evaluate --split test (or train)")
    from .generative import evaluate_generative, is_generative, model_task

    if is_generative(run):
        return evaluate_generative(run, plots=plots)
    if run.info.task in ("language_model", "translation"):
        from .text.generate import evaluate_language, evaluate_translation

        if run.info.task == "language_model":
            result = evaluate_language(run)
            m = result["metrics"]
            result["baseline"] = {"name": "unigram model (add-one smoothed train token counts)",
                                  "metrics": {"loss": m["unigram_loss"], "perplexity": m["unigram_perplexity"]}}
            return _written(run, result, plots)
        return _written(run, evaluate_translation(run), plots)
    if split not in ("train", "val", "test"):
        raise NetwrightError(f"split '{split}': choose train, val or test")
    head = {"split": split, "n": run.info.splits[split]}
    if model_task(run) == "contrastive":  # a self-supervised encoder: its loss, and how a k-NN vote reads its features
        from .tasks.contrastive import evaluate_contrastive

        return _written(run, {**head, "task": "self-supervised",
                              **evaluate_contrastive(run.load_model(), run.load_data(), split)}, plots)
    if run.info.task == "detection":  # boxes: mean average precision at IoU 0.5
        from .tasks.detection import evaluate_detection

        return _written(run, {**head, "task": "detection",
                              **evaluate_detection(run.load_model(), run.load_data(), split)}, plots)
    if run.info.task == "control":  # a policy: play the split's episodes
        from .tasks.control import evaluate_control

        solved = run.info.preprocess["env"].get("solved")
        return _written(run, {**head, "task": "control", **evaluate_control(
            run.load_model(), run.info, run.load_data().split(split).y, solved)}, plots)
    spec = run.spec
    data = run.load_data()
    part = data.split(split)
    model = run.load_model()
    task = SupervisedTask(data.info, spec.train)
    outputs = collect_outputs(model, task, part, batch_size, torch.device("cpu"))
    info = data.info
    result: dict[str, Any] = {"split": split, "n": len(part), "task": info.task}
    # the trivial predictor fitted on the train split; where the data brings a stronger baseline
    # (text, graph, ratings: under "baseline") this one is kept as "trivial_baseline"
    trivial = trivial_baseline(info, data.train.y, outputs["target"], task)
    if info.task == "classification":
        result.update(_classification(outputs["output"], outputs["target"], info.num_classes, info.class_names))
        if run.has("calibration.json"):
            result["calibration"] = calibration_report(run, outputs["output"], outputs["target"])
        if "tokenizer" in info.preprocess:  # text: beside the same data's bag-of-words baseline
            from .text.generate import bag_of_words_baseline

            result["baseline"] = bag_of_words_baseline(run, data, split)
        elif "graph" in info.preprocess:  # nodes of a graph: beside a classifier of their connections
            from .data.graphs import adjacency_baseline

            result["baseline"] = adjacency_baseline(data, split)
    else:
        result["metrics"] = task.metrics(outputs)
        if "ratings" in info.preprocess:  # recommendation: beside matrix factorisation, and hit rate at 10
            from .recommend import recommendation_report

            report = recommendation_report(model, data, split)
            result["metrics"]["hr_at_10"] = report.pop("hr_at_10")
            result.update(report)
        pred = task.unscale(outputs["output"].squeeze(-1)).numpy()
        true = task.unscale(outputs["target"]).numpy()
    result["baseline" if "baseline" not in result else "trivial_baseline"] = trivial
    if coverage is not None:
        result["conformal"] = conformal_report(run, model, data, outputs, task, coverage)
    run.write_json("eval.json", result)
    if plots:
        from . import plots as P

        folder = run.file("eval")
        if info.task == "classification":
            P.confusion_plot(result["confusion_matrix"], info.class_names, folder / "confusion.png",
                             f"{split}: accuracy {result['metrics']['accuracy']:.4f}")
            P.reliability_plot(result["reliability"], result["metrics"]["ece"], folder / "reliability.png")
        else:
            P.scatter_plot(true, pred, folder / "predictions.png", f"{split}: R² {result['metrics']['r2']:.3f}")
        history = run.metrics()
        if history:
            P.curves_plot(history, folder / "curves.png")
    return result


def trivial_baseline(info: Any, train_y: torch.Tensor, target: torch.Tensor, task: SupervisedTask) -> dict[str, Any]:
    """The metrics of the trivial predictor fitted on the train targets, scored on ``target``.

    Classification: the majority class of the train split (the first on ties), its probabilities
    the train class shares (scikit-learn's ``DummyClassifier(strategy="prior")``). Regression: the
    train mean in the target's units (``DummyRegressor()``).
    """
    n = len(target)
    if info.task == "classification":
        k = info.num_classes
        prior = torch.bincount(train_y.long(), minlength=k).double()
        prior = prior / prior.sum()
        # scored by the model's own metrics: log-probabilities are logits whose softmax is the prior
        # (a prior of 0 becomes 1e-15, argmax is the first majority class)
        logits = prior.clamp(min=1e-15).log().expand(n, k)
        return {"name": "majority class", "fitted_on": "train",
                "detail": f"always '{info.class_names[int(prior.argmax())]}', probabilities the train class shares",
                "metrics": _classification(logits, target.long(), k, info.class_names)["metrics"]}
    mean = float(task.unscale(train_y).mean())
    true = task.unscale(target)
    return {"name": "train mean", "fitted_on": "train", "detail": f"always {mean:.6g}",
            "metrics": regression_metrics(torch.full_like(true, mean), true)}


def calibration_report(run: Run, logits: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
    """ECE, Brier score and NLL of the evaluated split before and after the run's temperature."""
    from .calibrate import calibration_scores, temperature

    t = temperature(run)
    return {"method": "temperature scaling fitted on the validation split (netwright calibrate)", "temperature": t,
            "before": calibration_scores(logits, target), "after": calibration_scores(logits, target, t)}


def conformal_report(run: Run, model: Any, data: Any, outputs: dict[str, torch.Tensor], task: SupervisedTask,
                     coverage: float) -> dict[str, Any]:
    """Conformal sets (intervals) fitted on the validation split, scored on the evaluated outputs."""
    from .calibrate import probabilities
    from .conformal import aps_sets, run_calibration, score_intervals, score_sets

    fit = run_calibration(run, model, data, coverage)
    if run.info.task == "classification":
        scores = score_sets(aps_sets(probabilities(outputs["output"]), fit["q"]), outputs["target"].numpy())
    else:
        pred = task.unscale(outputs["output"].squeeze(-1)).numpy()
        scores = score_intervals(pred, fit["q"], task.unscale(outputs["target"]).numpy())
    return {**fit, **scores}


def _classification(logits: torch.Tensor, target: torch.Tensor, k: int, names: list[str]) -> dict[str, Any]:
    probs = torch.softmax(logits.double(), dim=1)
    pred = probs.argmax(dim=1)
    cm = confusion_matrix(pred, target, k)
    ece, table = expected_calibration_error(probs, target)
    tp = cm.diag().double()
    precision = tp / cm.sum(0).double().clamp(min=1)
    recall = tp / cm.sum(1).double().clamp(min=1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    return {
        "metrics": {
            "accuracy": float((pred == target).double().mean()),
            "f1": macro_f1(cm),
            "loss": float(torch.nn.functional.cross_entropy(logits.double(), target)),
            "ece": ece,
        },
        "class_names": names,
        "confusion_matrix": cm.tolist(),
        "per_class": [
            {"class": names[i], "precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
             "support": int(cm[i].sum())}
            for i in range(k)
        ],
        "reliability": table,
    }


def _written(run: Run, result: dict[str, Any], plots: bool) -> dict[str, Any]:
    """Write ``eval.json`` (and the training curves) for the models scored by their own measure."""
    run.write_json("eval.json", result)
    if plots and run.metrics():
        from .plots import curves_plot

        curves_plot(run.metrics(), run.file("eval") / "curves.png")
    return result
