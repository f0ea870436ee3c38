"""The CLI answers at once: a command imports only what it uses (timings: benchmarks/startup.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ["onnx", "onnxruntime", "onnxscript", "scipy", "fairlearn", "captum", "fastapi", "uvicorn", "torch_pruning",
         "sklearn", "matplotlib"]


def imported_after(code: str) -> set[str]:
    """The top-level packages that a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_importing_the_cli_loads_no_heavy_stack():
    loaded = imported_after("import netwright.cli")
    assert not loaded & {*HEAVY, "torch"}, loaded & {*HEAVY, "torch"}


def test_import_netwright_is_lazy_but_complete():
    assert not imported_after("import netwright") & {*HEAVY, "torch"}
    # every public name still resolves, to the function rather than its namesake module
    code = ("import netwright, types\n"
            "import netwright.stages.evaluate, netwright.compress, netwright.explain, netwright.report, netwright.stages.report\n"
            "assert not [n for n in netwright.__all__ if isinstance(getattr(netwright, n), types.ModuleType)]")
    imported_after(code)


@pytest.mark.parametrize("argv, absent", [
    (["--help"], {*HEAVY, "torch"}),
    (["datasets"], {*HEAVY, "torch"}),
    (["runs"], {*HEAVY, "torch"}),
    (["validate", "examples/digits_cnn.yaml"], set(HEAVY)),
])
def test_a_command_imports_only_what_it_uses(argv, absent):
    from conftest import ROOT

    code = (f"import os, sys\nos.chdir({str(ROOT)!r})\nfrom netwright.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit as e:\n    assert not e.code, e.code")
    loaded = imported_after(code)
    assert not loaded & absent, loaded & absent
