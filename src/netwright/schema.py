"""The JSON Schema of a whole spec, for YAML editors (completion, checking) and other tools.

The fixed sections come from the pydantic models in :mod:`netwright.spec`; ``data:`` and
``model:`` are tagged unions over the registered loaders and models (the tag is ``name``), each
branch listing exactly that function's parameters with their types, defaults and help. An
example spec points at the file with ``# yaml-language-server: $schema=../docs/spec.schema.json``.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from .registry import Entry, Registry

SCHEMA_ID = "https://netwright.dev/spec.schema.json"


class _Lenient(GenerateJsonSchema):
    """Types without a JSON form (a file object a Python caller may pass) become 'anything'."""

    def handle_invalid_for_json_schema(self, schema: Any, error_info: str) -> dict[str, Any]:
        return {}


def _rewrite_refs(node: Any, prefix: str) -> Any:
    """Point ``#/$defs/X`` references at ``#/$defs/<prefix>X`` (definitions are merged into one table)."""
    if isinstance(node, dict):
        return {k: (f"#/$defs/{prefix}{v.rsplit('/', 1)[-1]}" if k == "$ref" else _rewrite_refs(v, prefix))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite_refs(v, prefix) for v in node]
    return node


def _branch(entry: Entry, section: str, common: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """One branch of a tagged union: ``name`` fixed to the entry, its parameters, nothing else."""
    schema = entry.params.model_json_schema(schema_generator=_Lenient)
    prefix = f"{section}.{entry.name}."
    for key, value in schema.pop("$defs", {}).items():
        defs[prefix + key] = _rewrite_refs(value, prefix)
    helps = entry.help()
    props = {}
    for key, value in _rewrite_refs(schema.get("properties", {}), prefix).items():
        value.pop("title", None)
        if key in helps:
            value["description"] = helps[key]
        props[key] = value
    return {
        "title": f"{section}: {entry.name}",
        "description": entry.summary,
        "type": "object",
        "properties": {"name": {"const": entry.name, "description": entry.summary}, **common, **props},
        "required": ["name", *schema.get("required", [])],
        "additionalProperties": False,
    }


def _union(registry: Registry, section: str, common: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    branches = [_branch(e, section, common, defs) for e in registry.entries()]
    return {
        "description": f"a registered {registry.kind} by name, with its own keys (netwright {section}s NAME lists them)",
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"enum": registry.names()}},
        "oneOf": branches,
    }


def spec_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a spec, over every registered dataset and model."""
    from .data import DATASETS
    from .models import MODELS
    from .spec import Spec

    schema = copy.deepcopy(Spec.model_json_schema(schema_generator=_Lenient))
    defs = schema.setdefault("$defs", {})
    data_common = {k: v for k, v in defs.pop("DataSpec")["properties"].items() if k != "name"}
    defs.pop("ModelSpec")
    schema["properties"]["data"] = _union(DATASETS, "data", data_common, defs)
    schema["properties"]["model"] = _union(MODELS, "model", {}, defs)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            "title": "netwright spec", **{k: v for k, v in schema.items() if k != "title"}}
