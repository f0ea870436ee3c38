"""The kinds of run by name, and the one place a run's kind is resolved.

A run's kind is its model's own when the model is registered for one (``task="adversarial"``: a
GAN, ``task="detection"``: a detector, ...), else its data's (``DataInfo.kind``: classification,
regression, text classification, ...). A data set whose kind needs a model of its own (a language
model's text, a detector's scenes) names that model as the kind's ``preset``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import NetwrightError

if TYPE_CHECKING:
    from ..data.info import DataInfo
    from ..run import Run
    from .base import Kind

TASKS: dict[str, type[Kind]] = {}


def register_task(name: str, *, title: str, plural: str) -> Any:
    """Register a kind class under ``name`` (a plugin may add one: see ``docs/architecture.md``)."""

    def wrap(cls: type[Kind]) -> type[Kind]:
        if name in TASKS and TASKS[name] is not cls:
            raise NetwrightError(f"kind '{name}' is registered twice ({TASKS[name].__module__} and {cls.__module__})")
        cls.name, cls.title, cls.plural = name, title, plural
        TASKS[name] = cls
        return cls

    return wrap


def task_class(info: DataInfo, model_name: str) -> type[Kind]:
    """The kind of a run of model ``model_name`` on data ``info``.

    Raises:
        NetwrightError: the data needs a model of its own kind and ``model_name`` is another.
    """
    from ..models import MODELS

    own = MODELS.get(model_name).meta.get("task")
    data_kind = info.kind
    if data_kind not in TASKS:
        raise NetwrightError(f"data '{info.name}' is of kind '{data_kind}', which no registered task trains; "
                             f"known kinds: {', '.join(sorted(TASKS))}")
    cls = TASKS[data_kind]
    if own is None:
        if cls.preset is not None:
            raise NetwrightError(f"model.name: {model_name} does not do {data_kind.replace('_', ' ')}; "
                                 f"'{info.name}' needs model.name: {cls.preset}")
        return cls
    if own not in TASKS:
        raise NetwrightError(f"model '{model_name}' is registered for kind '{own}', which no registered task trains")
    mine = TASKS[own]
    if cls.preset is not None and mine is not cls:
        raise NetwrightError(f"model.name: {model_name} does not do {data_kind.replace('_', ' ')}; "
                             f"'{info.name}' needs model.name: {cls.preset}")
    return mine


def task_for(info: DataInfo, model_name: str, train: Any = None, **context: Any) -> Kind:
    """The kind of a run, built for ``info`` and the train spec (``context``: what training adds,
    e.g. ``autocast`` or a fairness term)."""
    return task_class(info, model_name)(info, train, **context)


def run_task(run: Run) -> Kind:
    """The kind of a trained run, built from its saved data facts and spec."""
    spec = run.spec
    return task_for(run.info, spec.model.name, spec.train)
