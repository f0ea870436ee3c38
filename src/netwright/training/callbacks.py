"""Callbacks: code that runs at points of the training loop and may ask it to stop.

A callback subclasses :class:`Callback` and overrides the hooks it needs. Declare registered
ones in a spec (``train.callbacks: [{name: stop_at, metric: val_accuracy, value: 0.95}]``) or
pass instances to ``netwright.train(..., callbacks=[...])``; both run, spec ones first. A run
resumed from a checkpoint rebuilds the spec's callbacks; instances must be passed again.
"""

from __future__ import annotations

from typing import Any, Literal

from ..registry import Registry

CALLBACKS = Registry("callback")
register_callback = CALLBACKS.register


class Callback:
    """Hooks of the training loop; each does nothing unless overridden.

    A distributed job calls them on rank 0 only unless ``all_ranks`` is True; a stop asked on
    rank 0 stops every rank at the same epoch. A hook that raises ends training with a
    checkpoint at the end of the last whole epoch (``on_checkpoint`` of a checkpoint taken inside
    an epoch: that one) and one line naming the callback (``netwright train RUN --resume``
    continues once it is fixed).
    """

    name = "callback"
    all_ranks = False

    def on_train_start(self, run: Any, state: dict[str, Any]) -> None:
        """Before the first epoch (of this process: a resumed run starts at its checkpoint)."""

    def on_epoch_end(self, run: Any, record: dict[str, Any]) -> bool | None:
        """After an epoch's metrics (``record``: the row of ``metrics.jsonl``); return True to stop."""

    def on_checkpoint(self, run: Any, path: Any) -> None:
        """After a checkpoint was written to ``path`` (every ``train.checkpoint_interval`` seconds,
        after a step or at an epoch's end, and the final one)."""

    def on_train_end(self, run: Any, summary: dict[str, Any]) -> None:
        """After the final weights and ``train.json`` were written."""


class StopAt(Callback):
    def __init__(self, metric: str, value: float, mode: str):
        self.name, self.metric, self.value, self.mode = "stop_at", metric, value, mode

    def on_epoch_end(self, run: Any, record: dict[str, Any]) -> bool:
        v = record.get(self.metric)
        return v is not None and (v >= self.value if self.mode == "max" else v <= self.value)


@register_callback("stop_at")
def stop_at(metric: str, value: float, mode: Literal["max", "min"] = "max") -> Callback:
    """Stop training once a metric of the epoch reaches a value.

    Args:
        metric: a column of metrics.jsonl, e.g. val_accuracy or train_loss.
        value: the value to reach.
        mode: max (stop at metric >= value) or min (stop at metric <= value).
    """
    return StopAt(metric, value, mode)


def build_callbacks(specs: list[dict[str, Any]]) -> list[Callback]:
    """The spec's ``train.callbacks``, each validated against its registered parameters."""
    from ..errors import NetwrightError, SpecError

    out, problems = [], []
    for i, item in enumerate(specs):
        where = f"train.callbacks[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            problems.append(f"{where}: give a mapping with a name, e.g. {{name: stop_at, metric: val_accuracy, "
                            "value: 0.95}")
            continue
        params = {k: v for k, v in item.items() if k != "name"}
        try:
            entry = CALLBACKS.get(item["name"], path=f"{where}.name")
        except NetwrightError as e:
            problems.append(str(e))
            continue
        values, errors = CALLBACKS.validate(entry.name, params, where)
        problems += errors
        if not errors:
            out.append(entry.fn(**values))
    if problems:
        raise SpecError(problems)
    return out
