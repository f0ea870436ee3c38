"""tools/mutation_score.py, the mutation gate's counter, on planted verdict files: the killed share
per module, the exit codes (0 pass, 1 below a threshold, 2 unchecked), and --fallback filling the
mutants a run did not reach from an earlier run, counted as such."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

TOOL = ROOT / "tools" / "mutation_score.py"
MODULES = ["conformal.py", "calibration.py", "fairness/__init__.py", "metrics.py", "explain/sanity.py",
           "tasks/supervised.py", "tasks/classification.py", "tasks/regression.py", "stages/tune_score.py"]


def plant(folder: Path, codes: dict[str, int | None]) -> Path:
    """A mutants/ folder whose every module has ten mutants; ``codes`` overrides some verdicts."""
    for module in MODULES:
        meta = folder / "src" / "netwright" / f"{module}.meta"
        meta.parent.mkdir(parents=True, exist_ok=True)
        verdicts = {f"{module}__mutmut_{i}": codes.get(f"{module}:{i}", 1) for i in range(10)}
        meta.write_text(json.dumps({"exit_code_by_key": verdicts}))
    return folder


def score(mutants: Path, out: Path, *extra: str) -> tuple[int, dict]:
    r = subprocess.run([sys.executable, str(TOOL), "--mutants", str(mutants), "--out", str(out), *extra],
                       capture_output=True, text=True)
    return r.returncode, (json.loads(out.read_text()) if out.exists() else {})


def test_the_gate_counts_fails_and_refuses_to_pass_unchecked_mutants(tmp_path):
    code, result = score(plant(tmp_path / "all", {}), tmp_path / "a.json")
    assert code == 0 and result["overall"]["killed_share"] == 1.0 and result["complete"]
    survivors = {f"metrics.py:{i}": 0 for i in range(3)}  # 70% of metrics.py: below its threshold
    code, result = score(plant(tmp_path / "low", survivors), tmp_path / "b.json")
    assert code == 1 and result["modules"]["metrics.py"]["killed_share"] == 0.7
    assert not result["modules"]["metrics.py"]["passed"]
    code, _ = score(plant(tmp_path / "part", {"conformal.py:4": None}), tmp_path / "c.json")
    assert code == 2 and not (tmp_path / "c.json").exists()


def test_fallback_fills_only_the_unchecked_verdicts_and_says_how_many(tmp_path):
    now = plant(tmp_path / "now", {"conformal.py:4": None, "conformal.py:5": None, "metrics.py:1": 0})
    earlier = plant(tmp_path / "earlier", {"conformal.py:4": 0, "metrics.py:1": 1, "metrics.py:2": 0})
    code, result = score(now, tmp_path / "d.json", "--fallback", str(earlier), "--note", "planted")
    assert code == 0 and result["complete"] and result["note"] == "planted"
    assert list(result["verdicts_from"].values()) == [88, 2]
    assert result["modules"]["conformal.py"]["survived"] == 1  # 4 from the earlier run; 5 killed there
    assert result["modules"]["metrics.py"]["survived"] == 1  # this run's verdict on 1 stands; 2 is this run's kill
