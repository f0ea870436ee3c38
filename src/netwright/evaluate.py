"""The ``evaluate`` stage: test metrics, confusion matrix and calibration -> ``eval.json``."""

from __future__ import annotations

import os
from typing import Any

import torch

from .errors import NetwrightError
from .metrics import confusion_matrix, expected_calibration_error, macro_f1
from .run import Run, writes_run
from .tasks import SupervisedTask
from .training.trainer import collect_outputs


@writes_run("netwright evaluate")
def evaluate(run: Run | str | os.PathLike, split: str = "test", plots: bool = True,
             batch_size: int = 1024) -> dict[str, Any]:
    """Score a run's model on one split of its data and write ``eval.json`` (+ ``eval/*.png``).

    Classification: accuracy, macro F1, cross-entropy, expected calibration error with its
    reliability table, confusion matrix, per-class precision/recall/F1. Regression: MAE,
    RMSE, R² in the target's units.
    """
    run = run if isinstance(run, Run) else Run.open(run)
    from .generative import evaluate_generative, is_generative, model_task

    if is_generative(run):
        return evaluate_generative(run, plots=plots)
    if run.info.task in ("language_model", "translation"):
        from .text.generate import evaluate_language, evaluate_translation

        return _written(run, evaluate_language(run) if run.info.task == "language_model" else evaluate_translation(run),
                        plots)
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
    if info.task == "classification":
        result.update(_classification(outputs["output"], outputs["target"], info.num_classes, info.class_names))
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
