"""Plugins: a user's own models, data sets and callbacks, from a file or an importable module.

A spec names them (``plugins: [my_models.py, my_package.models]``: files relative to the spec,
or modules on the Python path); an installed package registers its own through the
``netwright.plugins`` entry-point group, with no spec line. Importing a plugin runs its
``register_model`` / ``register_dataset`` / ``register_callback`` decorators. A run records the
plugins it used (``plugins.json``: each file's absolute path and SHA-256), and every later verb
imports them first; a missing or changed file is one line naming it and the run. A changed file
is imported anyway, with a warning, under ``netwright --trust-changed-plugins`` or
``NETWRIGHT_TRUST_CHANGED_PLUGINS=1``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from .errors import NetwrightError

ENTRY_POINTS = "netwright.plugins"
TRUST_ENV = "NETWRIGHT_TRUST_CHANGED_PLUGINS"  # "1": import a plugin file that changed since training
_loaded: dict[str, str] = {}  # what this process imported: plugin key -> module name
_scanned = False  # the installed entry points were imported
_warned: set[str] = set()  # changed plugin files this process already warned about


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_plugins(items: list[str], base: Path) -> list[dict[str, Any]]:
    """Import the spec's ``plugins`` (files relative to ``base``, or module names) and the
    installed entry points; returns what to record in the run."""
    import_entry_points()
    records: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise NetwrightError(f"plugins: {item!r}: give a .py file (relative to the spec) or a module name")
        if item.endswith(".py") or "/" in item or "\\" in item:
            path = (base / item).resolve()
            if not path.is_file():
                raise NetwrightError(f"plugins: {item}: no such file (looked for {path}); give a .py file relative "
                                     "to the spec, or an importable module name")
            records.append({"plugin": str(path), "kind": "file", "sha256": import_file(path)})
        else:
            import_module(item)
            records.append({"plugin": item, "kind": "module"})
    return records


def describe(items: list[str]) -> list[dict[str, Any]]:
    """What a run records of its resolved plugins (absolute file paths, or module names)."""
    return [{"plugin": p, "kind": "file", "sha256": sha256(Path(p))} if p.endswith(".py")
            else {"plugin": p, "kind": "module"} for p in items]


def import_file(path: Path) -> str:
    """Import a plugin file once per process; returns its SHA-256."""
    digest = sha256(path)
    key = f"{path}:{digest}"
    if key not in _loaded:
        name = f"netwright_plugin_{path.stem}_{digest[:12]}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as e:
            del sys.modules[name]
            raise NetwrightError(f"plugins: {path} failed to import ({e.__class__.__name__}: {e}); fix the file") \
                from None
        _loaded[key] = name
    return digest


def import_module(name: str) -> None:
    if name in _loaded:
        return
    try:
        importlib.import_module(name)
    except ImportError as e:
        raise NetwrightError(f"plugins: module {name!r} cannot be imported ({e}); install it or give its .py file")\
            from None
    _loaded[name] = name


def import_entry_points() -> None:
    """Import every installed package's ``netwright.plugins`` entry points, once per process."""
    global _scanned
    if _scanned:
        return
    _scanned = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINTS):
        if ep.value not in _loaded:
            try:
                ep.load()
            except Exception as e:
                raise NetwrightError(f"the installed plugin {ep.name} ({ep.value}) failed to import "
                                     f"({e.__class__.__name__}: {e}); reinstall or uninstall it") from None
            _loaded[ep.value] = ep.value


def load_recorded(records: list[dict[str, Any]], run: Any) -> None:
    """Import the plugins a run was trained with, checking that each file is unchanged."""
    import_entry_points()
    for r in records:
        if r["kind"] == "module":
            import_module(r["plugin"])
            continue
        path = Path(r["plugin"])
        if not path.is_file():
            raise NetwrightError(f"{run}: trained with the plugin {path}, which is missing; restore it or train "
                                 "the run again")
        now = sha256(path)
        if now != r["sha256"]:
            change = f"the plugin {path} changed since training (sha256 {r['sha256'][:12]} -> {now[:12]})"
            if os.environ.get(TRUST_ENV) != "1":
                raise NetwrightError(f"{run}: {change}; restore it, train the run again, or import it anyway with "
                                     f"'netwright --trust-changed-plugins VERB ...' (or {TRUST_ENV}=1)")
            if f"{path}:{now}" not in _warned:
                _warned.add(f"{path}:{now}")
                print(f"warning: {run}: {change}; importing it anyway (--trust-changed-plugins)", file=sys.stderr,
                      flush=True)
        import_file(path)
