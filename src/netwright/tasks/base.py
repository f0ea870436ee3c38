"""The kind of run: the one object that knows what a step, an evaluation and a prediction mean.

The trainer owns the loop and asks the task for each step; every stage after training asks the
task too (which verbs apply, how a split is scored beside its baseline, how outputs read as
predictions), so no stage branches on the kind. A kind is a class registered under its name
(:func:`netwright.tasks.register_task`) and resolved once per run
(:func:`netwright.tasks.task_for`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch
from torch import nn

from ..errors import NetwrightError

if TYPE_CHECKING:
    from ..data.info import DataInfo
    from ..run import Run

#: every verb after ``train``; a kind lists those that apply to it in ``stages``
VERBS = frozenset({"evaluate", "predict", "sample", "generate", "explain", "audit", "mitigate", "monitor",
                   "calibrate", "conformal", "compress", "export", "serve", "report", "folds", "continual"})


class Task(Protocol):
    """The contract between the trainer, the stages and a kind of learning problem."""

    #: the kind's name (``classification``, ``detection``, ...): recorded in ``eval.json`` and the card
    name: ClassVar[str]
    #: the verbs (of :data:`VERBS`) that apply to runs of this kind
    stages: ClassVar[frozenset[str]]
    #: metric that picks the best epoch when ``train.monitor`` is ``auto`` (e.g. ``val_accuracy``)
    default_monitor: str
    #: names of the metrics :meth:`metrics` returns
    metric_names: list[str]

    # ---- training (the trainer calls these)

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Called before each epoch (schedules inside the task, such as decaying noise)."""

    def optimizers(self, model: nn.Module) -> list[torch.optim.Optimizer]:
        """One optimizer, or one per network for adversarial training."""

    def train_step(self, model: nn.Module, batch: tuple[torch.Tensor, ...],
                   optimizers: list[torch.optim.Optimizer]) -> torch.Tensor | dict[str, torch.Tensor]:
        """Forward, loss, backward and optimizer step(s); returns the (detached) loss, or one
        loss per network (logged as ``train_<name>``; their sum as ``train_loss``)."""

    def eval_step(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        """Outputs of one batch kept for :meth:`metrics` (no gradients)."""

    def metrics(self, outputs: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Metrics from the concatenated outputs of :meth:`eval_step`."""

    def val_rows(self, n: int, role: str, seed: int) -> Any:
        """The positions of the validation split that a choice reads (``netwright.data.roles``;
        None: every row), so that the kept epoch, a temperature and conformal thresholds never
        share one."""

    # ---- after training (the stages call these)

    def require(self, verb: str, run: Run) -> None:
        """Raise the one-line refusal when ``verb`` does not apply to this kind."""

    def evaluate(self, run: Run, split: str, batch_size: int = 1024, coverage: float | None = None) -> dict[str, Any]:
        """The body of ``eval.json``: the model's metrics on ``split`` beside its ``baseline``."""

    def plots(self, run: Run, result: dict[str, Any], folder: Path) -> None:
        """The evaluation's pictures (beyond the learning curves) into ``folder``."""

    def prepare(self, run: Run, model: nn.Module, coverage: float | None = None) -> None:
        """Load what :meth:`decode` needs for a run's outputs (a temperature, conformal thresholds)."""

    def decode(self, outputs: torch.Tensor, inputs: Any = None) -> list[dict[str, Any]]:
        """Model outputs for a batch -> one prediction a person reads per example
        (``inputs``: the raw inputs as given, for kinds whose decisions read them)."""

    def target(self, outputs: torch.Tensor, chosen: int | None = None) -> torch.Tensor:
        """The output index an attribution explains, per example (``chosen``: the user's class)."""

    def label(self, y: Any) -> Any:
        """A stored target as a person reads it (None where targets are not labels)."""

    @classmethod
    def example(cls) -> dict[str, Any]:
        """A tiny spec (``data``, ``model``, ``train``) of this kind, for the contract tests."""


def backward_step(model: nn.Module, optimizer: torch.optim.Optimizer, objective: torch.Tensor, loss_scale: float,
                  grad_clip: float | None) -> None:
    """Backward (scaled by this process's share of the global batch), optional gradient-norm
    clipping, optimizer step."""
    (objective * loss_scale if loss_scale != 1.0 else objective).backward()
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()


class Kind:
    """What every kind shares: construction from the data and the train spec, the refusal of
    verbs that do not apply, the learning curves as the evaluation's pictures. A kind subclasses
    this and fills in the rest of :class:`Task`."""

    name: ClassVar[str] = ""
    #: how the kind is named in a sentence: "a classifier", and of several: "classifiers"
    title: ClassVar[str] = ""
    plural: ClassVar[str] = ""
    stages: ClassVar[frozenset[str]] = frozenset({"evaluate", "export", "report"})
    #: what to do instead of a verb that does not apply (``{run}`` stands for the run's path): one
    #: hint for every verb, or a hint per verb
    instead: ClassVar[str | dict[str, str]] = ""
    #: the registered model that data of this kind needs (None: any model of the registry fits)
    preset: ClassVar[str | None] = None
    #: whether the model's outputs are logits over ``info.class_names`` (a classifier, a policy's actions)
    picks_class: ClassVar[bool] = False
    #: the metric a summary leads with and compression keeps (``eval.json``'s ``metrics``)
    headline: ClassVar[str] = "loss"
    #: whether a step may run under bf16 autocast (``train.precision: auto`` decides when it pays)
    mixed_precision: ClassVar[bool] = False
    #: whether ``--nproc`` (torch.distributed) may train it
    distributed: ClassVar[bool] = True
    #: whether targets are places in the input (boxes, masks): augmentation that moves the input would misalign them
    spatial_targets: ClassVar[bool] = False
    #: how the validation split is divided between the choices made on it (``netwright.data.roles``):
    #: the kept epoch alone, unless the kind also fits a temperature or conformal thresholds
    val_roles: ClassVar[dict[str, float]] = {"select": 1.0}
    default_monitor = "val_loss"
    metric_names: list[str] = ["loss"]

    def __init__(self, info: DataInfo, train: Any = None, **context: Any):
        self.info, self.train_spec = info, train
        self.loss_scale = 1.0  # set by the trainer in distributed runs (a rank's share of the global batch)
        self.autocast = context.get("autocast")  # None: full precision, no context to enter on every step

    @classmethod
    def require(cls, verb: str, run: Run) -> None:
        if verb not in cls.stages:
            hint = cls.instead.get(verb, "") if isinstance(cls.instead, dict) else cls.instead
            raise NetwrightError(f"{verb} applies to {cls.applies_to(verb)}; {run.path} is {cls.title}"
                                 + (f": {hint.format(run=run.path)}" if hint else ""))

    @staticmethod
    def applies_to(verb: str) -> str:
        """The kinds a verb applies to, in words: "classifiers, regressors and policies"."""
        from .registry import TASKS

        kinds = list(dict.fromkeys(cls.plural for cls in TASKS.values() if verb in cls.stages))
        return " and ".join([", ".join(kinds[:-1]), kinds[-1]] if len(kinds) > 1 else kinds) or "no kind of run"

    # ---- training

    @classmethod
    def companions(cls, spec: Any, info: DataInfo) -> dict[str, dict[str, Any]]:
        """Specs of the runs this kind needs trained into ``RUN/<name>/`` first (a GAN's judge);
        the task gets them as ``companions={name: Run}``."""
        return {}

    @staticmethod
    def cost_module(model: nn.Module) -> nn.Module:
        """The network whose forward sets the cost of a step (``train.threads: auto``)."""
        return model

    def training_flops(self, model: nn.Module, example: torch.Tensor) -> int | None:
        """Forward FLOPs of one training example (the compute report), None where a step is not one forward."""
        from ..models.cost import forward_flops

        return forward_flops(model, example)

    def forward_flops(self, model: nn.Module) -> int:
        """FLOPs of the model's forward on one example (the model card)."""
        from ..deploy.onnx_io import example_input
        from ..models.cost import forward_flops

        return forward_flops(model, example_input(self.info, 1))

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Nothing changes between epochs."""

    def fit_to(self, train: Any) -> None:
        """Learn what the step needs from the train split before training (class weights);
        refuses the train options this kind does not take."""
        ts = self.train_spec
        for key, off in (("class_weight", "none"), ("sampler", "shuffle")):
            if getattr(ts, key, off) != off:
                raise NetwrightError(f"train.{key}: {getattr(ts, key)} applies to classifiers; {self.info.name} with "
                                     f"this model makes {self.title}; drop it")

    def share(self, part: torch.Tensor, whole: torch.Tensor) -> float:
        """A rank's share of a global batch's loss (its targets ``part`` of ``whole``): the share of
        the examples, for a loss that is a mean over them."""
        return len(part) / len(whole)

    def sampling_weights(self, y: torch.Tensor) -> torch.Tensor | None:
        """How likely each training example is to be drawn (None: each once an epoch, shuffled)."""
        return None

    def val_rows(self, n: int, role: str, seed: int) -> Any:
        """The positions of a validation split of ``n`` rows that ``role`` reads (None: all of them)."""
        from ..data.roles import rows_for

        return rows_for(n, self.val_roles, role, seed)

    def describe(self, info: DataInfo) -> str:
        """What a model of this kind does, for the card's first line ("classifies ...")."""
        return f"is {self.title} on {info.name}"

    def plots(self, run: Run, result: dict[str, Any], folder: Path) -> None:
        """No pictures beyond the learning curves."""

    def export(self, run: Run, target: Path, samples: int = 512) -> dict[str, Any]:
        """Write the run's own model to ``target`` as ONNX and verify it in ONNX Runtime
        (``export/verify.json``'s body)."""
        from ..deploy.onnx_io import export_onnx
        from ..deploy.verify import verify

        reference = self.export_reference(run, run.load_model())
        export_onnx(reference, self.info, target)
        # outputs are logits / T where a temperature is in the graph: their softmax is calibrated
        return {**verify(run, target, self, samples=samples, reference=reference),
                "temperature": getattr(reference, "temperature", 1.0)}

    def export_reference(self, run: Run, model: nn.Module) -> nn.Module:
        """The module an export writes for the run's own model (a classifier's divides by its temperature)."""
        return model

    def export_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Test inputs an exported model is checked on, and inputs of another length for a model
        whose length axis is dynamic."""
        return x, torch.cat([x[:4], x[:4]], dim=-1)

    def prepare(self, run: Run, model: nn.Module, coverage: float | None = None) -> None:
        if coverage is not None:
            raise NetwrightError(f"--coverage applies to {self.applies_to('conformal')}; {run.path} is {self.title}")


class OneNetworkTask(Kind):
    """A task that trains one network with one optimizer: a step computes ``objective(model,
    batch)``, then backward, clipping and the optimizer step. Subclasses give the objective."""

    def optimizers(self, model: nn.Module) -> list[torch.optim.Optimizer]:
        from ..training.optim import build_optimizer  # training/ imports tasks/: import here, no cycle

        return [build_optimizer(model.parameters(), self.train_spec.optimizer)]

    def objective(self, model: nn.Module, batch: tuple[Any, ...]) -> torch.Tensor:
        raise NotImplementedError

    def train_step(self, model: nn.Module, batch: tuple[Any, ...],
                   optimizers: list[torch.optim.Optimizer]) -> torch.Tensor:
        (opt,) = optimizers
        opt.zero_grad(set_to_none=True)
        loss = self.objective(model, batch)
        backward_step(model, opt, loss, self.loss_scale, self.train_spec.grad_clip)
        return loss.detach()
