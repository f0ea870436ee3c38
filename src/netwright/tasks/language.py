"""Language modelling (next token at every position) and sequence-to-sequence translation
(teacher forcing). Both report loss, perplexity and token accuracy; padding is ignored."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.info import DataInfo
from ..spec import TrainSpec
from .base import OneNetworkTask
from ..text.tokenizer import PAD


class _TokenTask(OneNetworkTask):
    metric_names = ["loss", "perplexity", "accuracy"]

    def __init__(self, info: DataInfo, train: TrainSpec, autocast: Any = None):
        super().__init__(info, train)
        self.autocast = autocast

    def logits(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def objective(self, model: nn.Module, batch: tuple[Any, ...]) -> torch.Tensor:
        if self.autocast is None:
            logits, target = self.logits(model, batch[0], batch[1])
        else:
            with self.autocast():
                logits, target = self.logits(model, batch[0], batch[1])
        return F.cross_entropy(logits.float().flatten(0, 1), target.flatten(), ignore_index=PAD,
                               label_smoothing=self.train_spec.label_smoothing)

    @torch.no_grad()
    def eval_step(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        logits, target = self.logits(model, batch[0], batch[1])
        logits = logits.float().flatten(0, 1)
        target = target.flatten()
        keep = target != PAD
        loss = F.cross_entropy(logits, target, ignore_index=PAD, reduction="sum")
        correct = ((logits.argmax(-1) == target) & keep).sum()
        # sums only: full logits (examples x steps x vocabulary) would not fit in memory
        return {"loss_sum": loss[None].double(), "tokens": keep.sum()[None].double(), "correct": correct[None].double()}

    def metrics(self, outputs: dict[str, torch.Tensor]) -> dict[str, Any]:
        tokens = float(outputs["tokens"].sum())
        loss = float(outputs["loss_sum"].sum()) / max(tokens, 1.0)
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)),
                "accuracy": float(outputs["correct"].sum()) / max(tokens, 1.0)}


class LanguageModelTask(_TokenTask):
    """Predict every next token of a window (a causal model sees only the tokens before)."""

    def logits(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return model(x), y  # (B, T, V), (B, T)


class Seq2SeqTask(_TokenTask):
    """Translate: the decoder reads the target up to step t and predicts step t + 1."""

    def logits(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return model(x, y[:, :-1]), y[:, 1:]
