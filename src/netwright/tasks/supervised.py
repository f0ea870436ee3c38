"""Supervised learning, the step shared by classification and regression (cross-entropy or mean
squared error, optional L1/L2 penalties, label smoothing, a fairness term), and what their
evaluations share: the outputs on a split and the trivial baseline fitted on the train split."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.info import DataInfo, Split
from ..data.stream import StreamedSplit
from .base import Kind, backward_step

if TYPE_CHECKING:
    from ..run import Run

#: the verbs that apply to every model that maps an input to a class or a value
SUPERVISED_STAGES = frozenset({"evaluate", "predict", "explain", "compress", "export", "serve", "report",
                               "conformal", "monitor", "folds"})


@torch.no_grad()
def collect_outputs(model: nn.Module, task: Any, split: Split, batch_size: int,
                    device: torch.device) -> dict[str, torch.Tensor]:
    """Run ``task.eval_step`` over a split in batches and concatenate the outputs (on the CPU)."""
    was_training = model.training
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {}
    batches = split.batches(batch_size) if isinstance(split, StreamedSplit) else (  # a streamed table: every row
        (split.x[i:i + batch_size], split.y[i:i + batch_size]) for i in range(0, len(split), batch_size))
    for xb, yb in batches:
        out = task.eval_step(model, (xb.to(device), yb.to(device)))
        for k, v in out.items():
            parts.setdefault(k, []).append(v.cpu())
    model.train(was_training)
    return {k: torch.cat(v) for k, v in parts.items()}


class SupervisedTask(Kind):
    """Classification or regression with optional L1/L2 penalties and label smoothing.

    Regression targets are standardised with train-split statistics for the loss;
    metrics are reported in the target's original units.
    """

    stages = SUPERVISED_STAGES
    mixed_precision = True
    conformal: dict[str, Any] | None = None  # the fitted conformal threshold when decoding (prepare)

    def __init__(self, info: DataInfo, train: Any = None, **context: Any):
        super().__init__(info, train, **context)
        self.regularized = bool(train is not None and (train.l1 or train.l2))
        self.fairness = context.get("fairness")  # a FairnessTerm (netwright.fairness.mitigation) or None
        self._penalized: list[nn.Parameter] = []

    def optimizers(self, model: nn.Module) -> list[torch.optim.Optimizer]:
        from ..training.optim import build_optimizer

        # L1/L2 penalties apply to weight matrices and kernels, not to biases or norm scales
        self._penalized = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
        return [build_optimizer(model.parameters(), self.train_spec.optimizer)]

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def penalty(self) -> torch.Tensor | float:
        ts = self.train_spec
        total: torch.Tensor | float = 0.0
        if ts.l1:
            total = total + ts.l1 * sum(p.abs().sum() for p in self._penalized)
        if ts.l2:
            total = total + ts.l2 * sum(p.pow(2).sum() for p in self._penalized)
        return total

    def train_step(self, model: nn.Module, batch: tuple[Any, ...],
                   optimizers: list[torch.optim.Optimizer]) -> torch.Tensor:
        x, y = batch[0], batch[1]
        (opt,) = optimizers
        opt.zero_grad(set_to_none=True)
        if self.autocast is None:
            out = model(x)
        else:
            with self.autocast():
                out = model(x).float()
        if self.fairness is None:
            loss = self.loss(out, y)
            objective = loss
        else:
            loss, objective = self.fairness.loss(self, out, y, batch[2])
        if self.regularized:
            objective = objective + self.penalty()
        backward_step(model, opt, objective, self.loss_scale, self.train_spec.grad_clip)
        return loss.detach()

    @torch.no_grad()
    def eval_step(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        x, y = batch
        if self.autocast is None:
            return {"output": model(x), "target": y}
        with self.autocast():
            return {"output": model(x).float(), "target": y}

    def unscale(self, y: torch.Tensor) -> torch.Tensor:
        """Standardised regression values -> original units."""
        return self.info.unscale(y.double())

    # ---- after training

    def evaluate(self, run: Run, split: str, batch_size: int = 1024, coverage: float | None = None) -> dict[str, Any]:
        """The split's metrics beside the trivial predictor fitted on the train split (kept as
        ``trivial_baseline`` where the kind brings a stronger ``baseline``), and with
        ``coverage`` the conformal sets or intervals fitted on the validation split's conformal rows."""
        data, model = run.load_data(), run.load_model()
        outputs = self.outputs = collect_outputs(model, self, data.split(split), batch_size, torch.device("cpu"))
        result: dict[str, Any] = {"split": split, "n": len(outputs["target"]), "task": self.info.task,
                                  **self.scores(run, outputs)}
        baseline = self.baseline(run, data, split)
        trivial = self.trivial_baseline(data.train.y, outputs["target"])
        result.update({"baseline": baseline, "trivial_baseline": trivial} if baseline else {"baseline": trivial})
        if coverage is not None:
            result["conformal"] = {**(fit := self.fit_conformal(run, model, data, coverage)),
                                   **self.score_conformal(outputs, fit["q"])}
        return result

    def scores(self, run: Run, outputs: dict[str, torch.Tensor]) -> dict[str, Any]:
        """``metrics`` and the kind's tables from the split's outputs."""
        raise NotImplementedError

    def baseline(self, run: Run, data: Any, split: str) -> dict[str, Any] | None:
        """A baseline stronger than the trivial predictor that this kind's data brings, or None."""
        return None

    def trivial_baseline(self, train_y: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
        raise NotImplementedError

    def val_outputs(self, model: nn.Module, data: Any, role: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's raw outputs (float64) and the targets on the validation split's rows that
        ``role`` reads (``netwright.data.roles``; ``seed``: the run's ``data.split_seed``)."""
        from ..data.roles import take

        val = data.split("val")
        out = take(collect_outputs(model, self, val, 1024, torch.device("cpu")), self.val_rows(len(val), role, seed))
        return out["output"].double(), out["target"]

    def fit_conformal(self, run: Run, model: nn.Module, data: Any, coverage: float) -> dict[str, Any]:
        """The split-conformal threshold ``q`` fitted on the validation split's conformal rows (see
        ``netwright.conformal`` and ``netwright.data.roles``)."""
        import math

        from ..conformal import check_coverage
        from ..errors import NetwrightError
        from ..calibration import require_val

        check_coverage(coverage)
        self.require("conformal", run)
        require_val(run)
        fit, method = self.conformal_threshold(*self.val_outputs(model, data, "conformal", run.spec.data.split_seed),
                                               coverage)
        if math.isinf(fit["q"]):
            need = math.ceil(coverage / (1 - coverage) - 1e-9)  # 0.9 / 0.1 is 9.000000000000002 in floating point
            share = self.val_roles["conformal"]
            from ..data.roles import smallest_split

            raise NetwrightError(f"--coverage {coverage:g} needs at least {need} conformal rows, {run.path} has "
                                 f"{fit['n']} ({share:.0%} of its validation split); lower --coverage or "
                                 f"train with a larger data.val (at least "
                                 f"{smallest_split(self.val_roles, 'conformal', need)} validation rows)")
        return {"method": method, "coverage_target": coverage, "calibrated_on": "val", "rows": "conformal", **fit}

    def conformal_threshold(self, out: torch.Tensor, y: torch.Tensor, coverage: float) -> tuple[dict[str, Any], str]:
        raise NotImplementedError

    def score_conformal(self, outputs: dict[str, torch.Tensor], q: float) -> dict[str, float]:
        raise NotImplementedError

    def prepare(self, run: Run, model: nn.Module, coverage: float | None = None) -> None:
        """Load what decoding a run's outputs needs (a temperature, conformal thresholds)."""
        self.conformal = None
        if coverage is not None:
            self.conformal = self.fit_conformal(run, model, run.load_data(), coverage)

    def watched(self, outputs: torch.Tensor, positive: int) -> Any:
        """One number per example whose distribution ``monitor`` watches: the predicted value (a
        classifier's: the probability of the ``positive`` class)."""
        return outputs[:, 0].numpy()

    def target(self, outputs: torch.Tensor, chosen: int | None = None) -> torch.Tensor:
        """The output index an attribution explains: output 0 of a regressor."""
        return torch.zeros(len(outputs), dtype=torch.long)

    def label(self, y: Any) -> Any:
        """A stored target as a person reads it."""
        return float(y)
