"""Lifelong (continual) learning: the classes arrive as a sequence of tasks, learned one after
the other with one network (one output per class: class-incremental). After each task every
task's test accuracy is measured; forgetting is how far a task's accuracy fell from its best.

Methods: ``naive`` fine-tuning; ``ewc``, elastic weight consolidation (Kirkpatrick et al. 2017:
a quadratic pull towards the weights after each task, weighted by the diagonal Fisher
information, accumulated over tasks); ``replay``, a small store of each finished task's
training examples mixed into every later task's training data (experience replay).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.info import Dataset, Split
from ..errors import NetwrightError
from ..spec import ContinualSpec
from ..tasks import ClassificationTask


def task_classes(spec: ContinualSpec, class_names: list[str]) -> list[list[int]]:
    """Class indices of each task (default: consecutive pairs of the data's classes)."""
    if not spec.tasks:
        return [list(range(i, min(i + 2, len(class_names)))) for i in range(0, len(class_names), 2)]
    index = {c: i for i, c in enumerate(class_names)}
    out, seen = [], set()
    for k, names in enumerate(spec.tasks):
        unknown = [c for c in names if c not in index]
        if unknown or not names:
            raise NetwrightError(f"continual.tasks[{k}]: {unknown or 'no classes'} not among the classes "
                                 f"{', '.join(class_names)}")
        again = seen & set(names)
        if again:
            raise NetwrightError(f"continual.tasks[{k}]: {', '.join(sorted(again))} already in an earlier task")
        seen |= set(names)
        out.append([index[c] for c in names])
    if len(out) < 2:
        raise NetwrightError("continual.tasks: give at least two tasks")
    return out


def subset(split: Split | None, classes: list[int]) -> Split | None:
    if split is None:
        return None
    keep = torch.isin(split.y, torch.tensor(classes))
    return Split(split.x[keep], split.y[keep], {k: v[keep.numpy()] for k, v in split.groups.items()})


def accuracy(model: nn.Module, split: Split, device: torch.device, batch_size: int = 1024) -> float:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(split.x[i:i + batch_size].to(device)).argmax(1).cpu()
                          for i in range(0, len(split), batch_size)])
    return float((pred == split.y).double().mean())


class EWCTask(ClassificationTask):
    """A supervised task with the EWC penalty: lambda/2 * sum_i F_i (theta_i - theta*_i)^2."""

    def __init__(self, *args, ewc_lambda: float, anchors: dict[str, tuple[torch.Tensor, torch.Tensor]],
                 model: nn.Module, **kwargs):
        super().__init__(*args, **kwargs)
        self.ewc_lambda, self.anchors = ewc_lambda, anchors
        self.named = dict(model.named_parameters())
        self.regularized = True

    def penalty(self) -> torch.Tensor | float:
        total = super().penalty()
        ewc = sum((f * (self.named[n] - w) ** 2).sum() for n, (f, w) in self.anchors.items())
        return total + self.ewc_lambda / 2 * ewc


def fisher_diagonal(model: nn.Module, split: Split, samples: int, device: torch.device, seed: int) -> dict[str, torch.Tensor]:
    """Empirical diagonal Fisher information: mean squared gradient of the log-likelihood of
    labels sampled from the model's own predictions, one example at a time."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(split), generator=g)[:samples]
    fisher = {n: torch.zeros_like(p) for n, p in model.named_parameters() if p.requires_grad}
    model.eval()
    for i in idx.tolist():
        model.zero_grad(set_to_none=True)
        logits = model(split.x[i:i + 1].to(device))
        label = torch.multinomial(torch.softmax(logits.detach(), 1), 1)[:, 0]
        F.cross_entropy(logits, label).backward()
        for n, p in model.named_parameters():
            if p.grad is not None and n in fisher:
                fisher[n] += p.grad.detach() ** 2
    return {n: f / len(idx) for n, f in fisher.items()}


def check_continual(spec: Any, data: Dataset) -> list[list[int]]:
    """The tasks' class indices, or a one-line error (checked before a run directory is written)."""
    info = data.info
    if info.task != "classification":
        raise NetwrightError(f"continual learning here splits classes into tasks; '{info.name}' is {info.task} data")
    if data.test is None:
        raise NetwrightError("continual learning measures every task on the test split; set data.test above 0")
    return task_classes(spec.continual, info.class_names)


def train_continual(model: nn.Module, data: Dataset, spec: Any, device: torch.device, progress: Any,
                    make_trainer: Callable[[Any, Dataset], Any]) -> dict[str, Any]:
    """Learn the tasks in order, each with a trainer from ``make_trainer(task, data of the task)``;
    returns (and the caller writes) the accuracy matrix and summary."""
    c = spec.continual
    info = data.info
    tasks = check_continual(spec, data)
    tests = [subset(data.test, t) for t in tasks]
    rng = np.random.default_rng(spec.seed)
    memory: list[Split] = []
    anchors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    matrix: list[list[float | None]] = []
    phases = []
    for k, classes in enumerate(tasks):
        train = subset(data.train, classes)
        if c.method == "replay" and memory:
            train = Split(torch.cat([train.x] + [m.x for m in memory]), torch.cat([train.y] + [m.y for m in memory]))
        # the kept epoch is chosen on the classes the run trains on: replay's stored examples bring
        # the earlier tasks' classes back, so their validation rows judge its epochs too
        judged = sorted({i for t in tasks[:k + 1] for i in t}) if c.method == "replay" else classes
        part = Dataset(info, train, subset(data.val, judged), None)
        task = EWCTask(info, spec.train, ewc_lambda=c.ewc_lambda, anchors=anchors, model=model) \
            if c.method == "ewc" and anchors else ClassificationTask(info, spec.train)
        progress.message(f"task {k + 1}/{len(tasks)}: classes {', '.join(info.class_names[i] for i in classes)} "
                         f"({len(train)} training examples{', replay included' if c.method == 'replay' and memory else ''})")
        summary = make_trainer(task, part).fit()
        phases.append({"task": k + 1, "classes": [info.class_names[i] for i in classes], "train_examples": len(train),
                       "seconds": summary["seconds"], "best_epoch": summary["best_epoch"],
                       "final": summary["final"]})
        matrix.append([accuracy(model, tests[j], device) if j <= k else None for j in range(len(tasks))])
        if c.method == "replay":
            own = subset(data.train, classes)
            keep = torch.from_numpy(rng.choice(len(own), size=min(c.replay_per_task, len(own)), replace=False))
            memory.append(Split(own.x[keep], own.y[keep]))
        if c.method == "ewc":
            fisher = fisher_diagonal(model, subset(data.train, classes), c.fisher_samples, device, spec.seed + k)
            for n, p in model.named_parameters():  # online EWC: Fisher summed over tasks, anchor at the latest weights
                if n in fisher:
                    prev = anchors.get(n, (torch.zeros_like(p), None))[0]
                    anchors[n] = (prev + fisher[n], p.detach().clone())
    return summarise(matrix, tasks, info.class_names, c.method, phases)


def summarise(matrix: list[list[float | None]], tasks: list[list[int]], names: list[str], method: str,
              phases: list[dict[str, Any]]) -> dict[str, Any]:
    """Average accuracy over all tasks after the last one; forgetting: for each task but the
    last, its best accuracy before the end minus its accuracy at the end, averaged."""
    last = matrix[-1]
    n = len(tasks)
    forgetting = [max(matrix[k][j] for k in range(j, n - 1)) - last[j] for j in range(n - 1)]
    return {"method": method, "tasks": [[names[i] for i in t] for t in tasks], "accuracy_matrix": matrix,
            "average_accuracy": float(np.mean(last)), "average_forgetting": float(np.mean(forgetting)),
            "forgetting": forgetting, "phases": phases,
            "definition": "accuracy_matrix[k][j]: test accuracy on task j's classes (all classes to choose from) "
                          "after learning task k; forgetting of task j: its best accuracy before the last task "
                          "minus its accuracy after the last task"}
