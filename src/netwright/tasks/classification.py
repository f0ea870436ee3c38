"""Classification: cross-entropy training; accuracy, macro F1, calibration and the confusion
matrix beside the majority class; probabilities (temperature-scaled), conformal sets and the
fairness thresholds a run deploys, decoded into labels."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..metrics import classification_metrics, confusion_matrix, expected_calibration_error, macro_f1
from .registry import register_task
from .supervised import SUPERVISED_STAGES, SupervisedTask
from ..run import CALIBRATION

if TYPE_CHECKING:
    from ..run import Run


@register_task("classification", title="a classifier", plural="classifiers")
class ClassificationTask(SupervisedTask):
    """One class out of ``info.class_names`` per example."""

    stages = SUPERVISED_STAGES | {"audit", "mitigate", "calibrate", "continual"}
    picks_class = True
    headline = "accuracy"
    metric_names = ["loss", "accuracy", "f1"]
    val_roles = {"select": 1 / 3, "temperature": 1 / 3, "conformal": 1 / 3}

    class_weights: torch.Tensor | None = None  # balanced: n / (classes x count) per class of the train split
    temperature = 1.0  # softmax(logits / T) when decoding: the run's calibration (prepare)
    run: Run | None = None  # the run decoded for (prepare): its deployed fairness thresholds

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        w = self.class_weights
        return F.cross_entropy(out, y, weight=None if w is None else w.to(out.device),
                               label_smoothing=self.train_spec.label_smoothing)

    def fit_to(self, train: Any) -> None:
        if self.train_spec.class_weight == "balanced":
            self.class_weights = balanced_weights(train.y, self.info.num_classes)

    def share(self, part: torch.Tensor, whole: torch.Tensor) -> float:
        """With class weights the loss is a mean weighted by class: a rank's share is its weight."""
        w = self.class_weights
        if w is None:
            return super().share(part, whole)
        w = w.to(whole.device)
        return float(w[part].sum() / w[whole].sum())

    def sampling_weights(self, y: torch.Tensor) -> torch.Tensor | None:
        """The balanced sampler: each example drawn with probability 1 / (classes x its class's count)."""
        if self.train_spec.sampler != "balanced":
            return None
        return balanced_weights(y, self.info.num_classes).to(y.device)[y]

    def describe(self, info: Any) -> str:
        return f"classifies {info.name} examples into {len(info.class_names or [])} classes"

    def metrics(self, outputs: dict[str, torch.Tensor]) -> dict[str, Any]:
        return classification_metrics(outputs["output"], outputs["target"], self.info.num_classes)

    def scores(self, run: Run, outputs: dict[str, torch.Tensor]) -> dict[str, Any]:
        info = self.info
        result = class_report(outputs["output"], outputs["target"], info.num_classes, info.class_names)
        if run.has(CALIBRATION):
            from ..calibration import calibration_scores, temperature

            t, logits, target = temperature(run), outputs["output"], outputs["target"]
            result["calibration"] = {"method": "temperature scaling fitted on the validation split's "
                                               "temperature rows (netwright calibrate)", "temperature": t,
                                     "before": calibration_scores(logits, target),
                                     "after": calibration_scores(logits, target, t)}
        return result

    def trivial_baseline(self, train_y: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
        """The majority class of the train split (the first on ties), its probabilities the train
        class shares (scikit-learn's ``DummyClassifier(strategy="prior")``)."""
        info, n = self.info, len(target)
        k = info.num_classes
        prior = torch.bincount(train_y.long(), minlength=k).double()
        prior = prior / prior.sum()
        # scored by the model's own metrics: log-probabilities are logits whose softmax is the prior
        # (a prior of 0 becomes 1e-15, argmax is the first majority class)
        logits = prior.clamp(min=1e-15).log().expand(n, k)
        return {"name": "majority class", "fitted_on": "train",
                "detail": f"always '{info.class_names[int(prior.argmax())]}', probabilities the train class shares",
                "metrics": class_report(logits, target.long(), k, info.class_names)["metrics"]}

    def ensemble_metrics(self, outputs: list[dict[str, torch.Tensor]]) -> dict[str, Any]:
        """Several models' outputs on one split together: their probabilities averaged."""
        probs = torch.stack([torch.softmax(o["output"].double(), 1) for o in outputs]).mean(0)
        return class_report(probs.clamp_min(1e-12).log(), outputs[0]["target"], self.info.num_classes,
                            self.info.class_names)["metrics"]

    def plots(self, run: Run, result: dict[str, Any], folder: Path) -> None:
        from ..plots import confusion_plot, reliability_plot

        confusion_plot(result["confusion_matrix"], self.info.class_names, folder / "confusion.png",
                       f"{result['split']}: accuracy {result['metrics']['accuracy']:.4f}")
        reliability_plot(result["reliability"], result["metrics"]["ece"], folder / "reliability.png")

    def export_reference(self, run: Run, model: nn.Module) -> nn.Module:
        """A calibrated classifier is exported with its logits divided by its temperature."""
        from ..calibration import temperature
        from ..deploy.onnx_io import TemperatureScaled

        return TemperatureScaled(model, temperature(run)) if run.has(CALIBRATION) else model

    # ---- conformal sets

    def conformal_threshold(self, out: torch.Tensor, y: torch.Tensor, coverage: float) -> tuple[dict[str, Any], str]:
        from ..calibration import probabilities
        from ..conformal import classifier_sets

        return (classifier_sets(probabilities(out), y.numpy(), coverage),
                "split conformal, adaptive prediction sets (APS) on the validation split's conformal rows")

    def score_conformal(self, outputs: dict[str, torch.Tensor], q: float) -> dict[str, float]:
        from ..calibration import probabilities
        from ..conformal import aps_sets, score_sets

        return score_sets(aps_sets(probabilities(outputs["output"]), q), outputs["target"].numpy())

    # ---- predictions

    def prepare(self, run: Run, model: nn.Module, coverage: float | None = None) -> None:
        from ..calibration import temperature

        super().prepare(run, model, coverage)
        self.run, self.temperature = run, temperature(run)

    def decode(self, outputs: torch.Tensor, inputs: Any = None) -> list[dict[str, Any]]:
        """``label``, ``class`` and ``probabilities`` (``softmax(logits / T)``) per example; with
        conformal thresholds a ``set``; a run that deploys fairness thresholds decides by them."""
        rows = class_rows(self.info.class_names, outputs, self.temperature, self.conformal)
        run = self.run
        if run is not None:
            from ..fairness.postprocess import deployed_decisions

            rows = deployed_decisions(run, inputs, np.asarray(outputs.detach().cpu().numpy(), np.float64), rows)
        return rows

    def watched(self, outputs: torch.Tensor, positive: int) -> Any:
        return torch.softmax(outputs, 1)[:, positive].numpy()

    def target(self, outputs: torch.Tensor, chosen: int | None = None) -> torch.Tensor:
        """The class an attribution explains: ``chosen``, else the predicted class."""
        if chosen is not None:
            from ..errors import NetwrightError

            if not 0 <= chosen < self.info.num_classes:
                raise NetwrightError(f"--target {chosen}: classes are 0..{self.info.num_classes - 1}")
            return torch.full((len(outputs),), chosen)
        return outputs.argmax(1)

    def label(self, y: Any) -> Any:
        return self.info.class_names[int(y)]

    @classmethod
    def example(cls) -> dict[str, Any]:
        return {"data": {"name": "iris"}, "model": {"name": "mlp", "hidden": [8]}, "train": {"epochs": 1}}


def class_rows(names: list[str], outputs: Any, temperature: float = 1.0,
               conformal: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Logits -> ``label``, ``class`` and ``probabilities`` per example (the one place a
    classifier's probabilities become rows); ``conformal`` adds each example's ``set`` (APS on the
    model's own probabilities, as fitted)."""
    from ..calibration import probabilities

    out = np.asarray(outputs.detach().cpu().numpy() if isinstance(outputs, torch.Tensor) else outputs, np.float64)
    probs = probabilities(out, temperature)
    rows = [{"label": names[int(p.argmax())], "class": int(p.argmax()),
             "probabilities": {n: round(float(v), 6) for n, v in zip(names, p)}} for p in probs]
    if conformal is not None:
        from ..conformal import aps_sets

        for row, keep in zip(rows, aps_sets(probabilities(out), conformal["q"])):
            row["set"] = [n for n, k in zip(names, keep) if k]
    return rows


def class_report(logits: torch.Tensor, target: torch.Tensor, k: int, names: list[str]) -> dict[str, Any]:
    """Accuracy, macro F1, cross-entropy and ECE; the confusion matrix, per-class scores and the
    reliability table."""
    probs = torch.softmax(logits.double(), dim=1)
    pred = probs.argmax(dim=1)
    cm = confusion_matrix(pred, target, k)
    ece, table = expected_calibration_error(probs, target)
    tp = cm.diag().double()
    precision = tp / cm.sum(0).double().clamp(min=1)
    recall = tp / cm.sum(1).double().clamp(min=1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    present = cm.sum(1) > 0
    return {
        "metrics": {
            "accuracy": float((pred == target).double().mean()),
            "balanced_accuracy": float(recall[present].mean()),  # mean recall over the classes present
            "f1": macro_f1(cm),
            "loss": float(F.cross_entropy(logits.double(), target)),
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


def balanced_weights(y: torch.Tensor, k: int) -> torch.Tensor:
    """``n / (k x count)`` per class (scikit-learn's ``compute_class_weight("balanced")``); a class
    absent from ``y`` weighs 0."""
    counts = torch.bincount(y.long().cpu(), minlength=k).double()
    return torch.where(counts > 0, len(y) / (k * counts.clamp(min=1)), torch.zeros_like(counts)).float()

