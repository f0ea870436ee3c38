"""The layers hold: import-linter's contracts (``[tool.importlinter]`` in pyproject.toml) pass, no
module import cycle exists, and no stage branches on the kind of run (it asks the run's task)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

STAGES = ROOT / "src" / "netwright" / "stages"
# what a stage would write to decide for itself what kind of run it holds
KIND_BRANCH = re.compile(r"info\.task\b|\.task\s*(==|!=|in)\s|meta\.get\(\"task\"\)|model_task\(|is_generative\("
                         r"|isinstance\([^)]*(GAN|Task)\b|\"(tokenizer|graph|ratings|env)\" in ")


def test_import_linter_contracts_are_kept():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "lint-imports is missing: make test installs import-linter with the test extras"
    done = subprocess.run([exe], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one member (the import cycles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for m in sorted(edges):
        if m not in index:
            visit(m)
    return found


def test_the_finder_finds_a_planted_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_module_import_cycle():
    """Every import counts, those inside functions too (only ``if TYPE_CHECKING:`` ones do not run)."""
    import grimp

    graph = grimp.build_graph("netwright", include_external_packages=False, exclude_type_checking_imports=True)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert strongly_connected(edges) == []


def test_no_stage_branches_on_the_kind_of_run():
    """A stage asks ``run_task(run)`` (which verbs apply, how to evaluate, decode, export); the
    pattern finds the spellings the stages used before the kinds were one abstraction."""
    hits = [f"{p.name}:{i}: {line.strip()}" for p in sorted(STAGES.glob("*.py"))
            for i, line in enumerate(p.read_text().splitlines(), 1) if KIND_BRANCH.search(line)]
    assert hits == []
    assert KIND_BRANCH.search('if run.info.task == "detection":') and KIND_BRANCH.search('"tokenizer" in pre')
