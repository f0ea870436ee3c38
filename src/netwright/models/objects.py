"""A model handed to ``netwright.train(model=module)`` as an object rather than by name.

A module built by a registered builder (``build_model``, or a plugin's builder) carries its
name and arguments, and its run is ordinary: every verb rebuilds it in any process. Any other
``nn.Module`` is registered as ``model.name: object`` with its class name: the run stores its
weights only, and the verbs that rebuild the model (evaluate, explain, compress, export, serve,
report) work in the Python process that trained it, which keeps the object; elsewhere they stop
with one line saying how to make the run rebuildable.
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from ..data.info import DataInfo
from ..errors import NetwrightError
from .registry import register_model

_OBJECTS: dict[str, nn.Module] = {}  # class name -> the trained object of this process
ONLY_WEIGHTS = ("the model was an nn.Module object passed to netwright.train, so the run stores its weights only; "
                "evaluate, explain, compress, export, serve and report need that object in the same Python process "
                "(or register a builder with netwright.register_model and train from a spec)")


def class_name(module: nn.Module) -> str:
    return f"{type(module).__module__}.{type(module).__qualname__}"


def as_spec(module: nn.Module) -> dict[str, Any]:
    """The ``model:`` section for ``module``: its builder and arguments, or ``object`` and its class."""
    built = getattr(module, "_netwright_model", None)
    if built is not None:
        return dict(built)
    _OBJECTS[class_name(module)] = module
    return {"name": "object", "cls": class_name(module)}


@register_model("object", family="object", object=True)  # not buildable by name: the contract tests skip it
def object_model(info: DataInfo, cls: str) -> nn.Module:
    """An nn.Module passed to netwright.train(model=...) as an object (weights only in the run).

    Args:
        cls: its class, module.QualifiedName.
    """
    if cls not in _OBJECTS:
        raise NetwrightError(f"model.name: object ({cls}): {ONLY_WEIGHTS}")
    return copy.deepcopy(_OBJECTS[cls])
