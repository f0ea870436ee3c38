"""Named registries (models, datasets) with typed parameters.

A registered function declares its parameters with type hints and defaults; the
registry turns that signature into a pydantic model, so a spec's ``model:`` or
``data:`` section is validated against exactly the arguments the function takes:
unknown keys are errors and every default is filled in.
"""

from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from .errors import NetwrightError


@dataclass(frozen=True)
class Entry:
    """One registered function and what is known about it."""

    name: str
    fn: Callable[..., Any]
    params: type[BaseModel]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        """First line of the function's docstring."""
        return (inspect.getdoc(self.fn) or "").split("\n", 1)[0]

    def help(self) -> dict[str, str]:
        """One line of help per parameter, from the ``Args:`` section of the function's docstring."""
        return parse_args_section(inspect.getdoc(self.fn) or "")

    def defaults(self) -> dict[str, Any]:
        """Every parameter with its default (required ones are left out)."""
        return {
            k: f.get_default(call_default_factory=True)
            for k, f in self.params.model_fields.items()
            if not f.is_required()
        }


def parse_args_section(doc: str) -> dict[str, str]:
    """``{name: help}`` from a Google-style ``Args:`` section (continuation lines joined)."""
    out: dict[str, str] = {}
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Args:")
    except StopIteration:
        return out
    indent, current = None, None
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        width = len(line) - len(line.lstrip())
        if indent is None:
            indent = width
        if width < indent:
            break  # the next section (Returns:, Raises:) or the end
        text = line.strip()
        name, sep, rest = text.partition(":")
        if width == indent and sep and name.replace("_", "").isalnum():
            current = name.split(" ")[0]
            out[current] = rest.strip()
        elif current is not None:
            out[current] += " " + text
    return out


def did_you_mean(name: str, known: typing.Iterable[str]) -> str:
    """A ``did you mean 'x'? `` hint, or an empty string."""
    close = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'? " if close else ""


def format_errors(error: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> list[str]:
    """Turn a pydantic error into lines of the form ``path: what is wrong``."""
    lines = []
    for err in error.errors():
        loc = [str(p) for p in err["loc"]]
        path = ".".join([prefix, *loc] if prefix else loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            allowed = _fields_at(model, loc[:-1]) if model is not None else []
            hint = did_you_mean(loc[-1], allowed)
            msg = f"unknown key; {hint}allowed: {', '.join(allowed)}" if allowed else "unknown key"
        elif err["type"] == "missing":
            msg = "required, but missing"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if "input" in err and not isinstance(err["input"], dict):
                msg += f" (got {err['input']!r})"
        lines.append(f"{path}: {msg}")
    return lines


def _fields_at(model: type[BaseModel] | None, loc: list[str]) -> list[str]:
    """Field names of the nested model found by following ``loc`` from ``model``."""
    for part in loc:
        if model is None or part not in model.model_fields:
            return []
        annotation = model.model_fields[part].annotation
        candidates = [annotation, *typing.get_args(annotation)]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return list(model.model_fields) if model is not None else []


class Registry:
    """A name -> function table that validates the function's parameters."""

    def __init__(self, kind: str, skip: int = 0):
        """``kind`` names the table in messages; ``skip`` leading arguments are not parameters."""
        self.kind = kind
        self.skip = skip
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, **meta: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: register ``fn`` under ``name`` with free-form ``meta`` (modality, task...)."""

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = Entry(name, fn, _params_model(name, fn, self.skip), meta)
            return fn

        return decorate

    def names(self) -> list[str]:
        _installed_plugins()
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        if name not in self._entries:
            _installed_plugins()
        return name in self._entries

    def get(self, name: str, path: str | None = None) -> Entry:
        """The entry for ``name``; an unknown name fails with the list of known ones."""
        if name not in self._entries:
            _installed_plugins()  # an installed package may register it (the netwright.plugins entry points)
        if name not in self._entries:
            where = f"{path}: " if path else ""
            raise NetwrightError(
                f"{where}unknown {self.kind} '{name}'; {did_you_mean(name, self._entries)}"
                f"known: {', '.join(self.names())}"
            )
        return self._entries[name]

    def validate(self, name: str, params: dict[str, Any], path: str) -> tuple[dict[str, Any], list[str]]:
        """Validate ``params`` for ``name``; returns (resolved params, problems)."""
        entry = self.get(name, path=f"{path}.name")
        try:
            resolved = entry.params.model_validate(params)
        except ValidationError as e:
            return {}, format_errors(e, path, entry.params)
        return resolved.model_dump(mode="json"), []


def _installed_plugins() -> None:
    from .plugins import import_entry_points

    import_entry_points()


def _params_model(name: str, fn: Callable[..., Any], skip: int) -> type[BaseModel]:
    hints = typing.get_type_hints(fn, include_extras=True)  # keep Annotated[..., Field(ge=...)]
    fields: dict[str, Any] = {}
    for i, p in enumerate(inspect.signature(fn).parameters.values()):
        if i < skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[p.name] = (hints.get(p.name, Any), default)
    return create_model(
        f"{name}_params", __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True), **fields
    )
