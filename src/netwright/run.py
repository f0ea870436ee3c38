"""The run directory: everything one run produced, the contract between stages.

::

    runs/<name>/spec.yaml  data.json  metrics.jsonl  timing.jsonl  train.json
                checkpoints/last.safetensors  checkpoints/last.json
                model.safetensors  eval.json  eval/
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .atomic import write_json, write_text
from .errors import NetwrightError

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from .data.info import DataInfo, Dataset
    from .spec import Spec

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def default_runs_dir() -> Path:
    """``NETWRIGHT_RUNS`` or ``./runs``."""
    return Path(os.environ.get("NETWRIGHT_RUNS", "runs"))


class Run:
    """A run directory. Open an existing one with :meth:`open`."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run('{self.path}')"

    @property
    def name(self) -> str:
        return self.path.name

    # ------------------------------------------------------------------ create / open

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Run":
        """Open a run directory written by ``train``."""
        p = Path(path)
        if not p.exists() and not p.is_absolute() and (default_runs_dir() / p).exists():
            p = default_runs_dir() / p  # a bare run name
        if not p.is_dir():
            raise NetwrightError(f"{path}: no such run directory; 'netwright runs' lists the runs")
        if not (p / "spec.yaml").is_file() or not (p / "data.json").is_file():
            raise NetwrightError(f"{p}: not a run directory (no spec.yaml/data.json); train one with "
                                 "'netwright train SPEC'")
        return cls(p)

    @classmethod
    def create(cls, name: str, runs_dir: str | os.PathLike | None = None, overwrite: bool = False,
               explicit: bool = True) -> "Run":
        """Make a new run directory.

        An existing run is replaced only with ``overwrite``; otherwise an explicit name is an
        error and a derived one gets a ``-2``, ``-3``... suffix.
        """
        if not NAME_RE.match(name):
            raise NetwrightError(f"run name {name!r}: use letters, digits, '.', '_' and '-' (no slashes)")
        base = Path(runs_dir) if runs_dir is not None else default_runs_dir()
        path = base / name
        if path.exists():
            if overwrite:
                if any(path.iterdir()) and not (path / "spec.yaml").is_file():
                    raise NetwrightError(f"{path}: exists and is not a run directory; refusing to overwrite it")
                shutil.rmtree(path)
            elif explicit:
                raise NetwrightError(f"run '{name}' already exists at {path}; pick another --name, "
                                     "pass --overwrite to replace it, or --resume to continue it")
            else:
                i = 2
                while (base / f"{name}-{i}").exists():
                    i += 1
                path = base / f"{name}-{i}"
        path.mkdir(parents=True)
        return cls(path)

    # ------------------------------------------------------------------ files

    def file(self, rel: str) -> Path:
        return self.path / rel

    def has(self, rel: str) -> bool:
        return (self.path / rel).exists()

    def write_json(self, rel: str, obj: Any) -> Path:
        return write_json(self.path / rel, obj)

    def read_json(self, rel: str) -> Any:
        p = self.path / rel
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NetwrightError(f"{p}: missing; has this stage run yet?") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise NetwrightError(f"{p}: damaged JSON ({e})") from None

    # ------------------------------------------------------------------ contents

    @property
    def spec(self) -> "Spec":
        """The resolved spec saved at training time."""
        from .spec import load_spec

        return load_spec(self.path / "spec.yaml")

    def write_spec(self, spec: "Spec") -> None:
        write_text(self.path / "spec.yaml", spec.to_yaml())

    @property
    def info(self) -> "DataInfo":
        from .data.info import DataInfo

        return DataInfo.from_dict(self.read_json("data.json"))

    def metrics(self) -> list[dict[str, Any]]:
        """One dict per finished epoch (``metrics.jsonl``)."""
        p = self.path / "metrics.jsonl"
        if not p.is_file():
            return []
        return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]

    def load_data(self) -> "Dataset":
        """The run's dataset, split and normalised as at training time (checked by fingerprint)."""
        from .data import load_dataset

        data = load_dataset(self.spec.data)
        saved = self.read_json("data.json").get("fingerprint")
        if saved != data.info.fingerprint:
            raise NetwrightError(f"{self.path}: the data changed since training (fingerprint {saved} -> "
                                 f"{data.info.fingerprint}); restore it or train a new run")
        return data

    def load_model(self, weights: str = "model.safetensors") -> "nn.Module":
        """Rebuild the model from the spec and load its saved weights (eval mode)."""
        from .models import build_model
        from .training.checkpoint import load_model_weights

        spec = self.spec
        path = self.path / weights
        if not path.is_file():
            raise NetwrightError(f"{path}: missing; the run has no trained weights yet "
                                 f"(resume it with 'netwright train {self.path} --resume')")
        model = build_model(spec.model.name, self.info, **spec.model.params)
        load_model_weights(model, path)
        return model.eval()

    # ------------------------------------------------------------------ stages

    def evaluate(self, split: str = "test", **kwargs: Any) -> dict[str, Any]:
        """Score the run's model on a split; writes ``eval.json`` (see :func:`netwright.evaluate`)."""
        from .evaluate import evaluate

        return evaluate(self, split=split, **kwargs)

    def predict(self, inputs: "str | os.PathLike | np.ndarray", **kwargs: Any) -> list[dict[str, Any]]:
        """Predictions for raw inputs (see :func:`netwright.predict`)."""
        from .predict import predict

        return predict(self, inputs, **kwargs)


def list_runs(runs_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """A summary row per run directory under ``runs_dir``."""
    base = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    rows = []
    if not base.is_dir():
        return rows
    for p in sorted(base.iterdir()):
        if not (p / "spec.yaml").is_file():
            continue
        row: dict[str, Any] = {"name": p.name, "path": str(p)}
        try:
            raw = yaml.safe_load((p / "spec.yaml").read_text(encoding="utf-8"))
            row["dataset"], row["model"] = raw["data"]["name"], raw["model"]["name"]
            summary = json.loads((p / "train.json").read_text()) if (p / "train.json").is_file() else {}
            history = Run(p).metrics()
            row["epochs"] = len(history)
            row["status"] = "finished" if summary.get("finished") else "incomplete"
            if summary.get("monitor"):
                row["best"] = f"{summary['monitor']} {summary['best_value']:.4g}"
            if (p / "eval.json").is_file():
                ev = json.loads((p / "eval.json").read_text())
                key = "accuracy" if "accuracy" in ev["metrics"] else "r2"
                row["test"] = f"{key} {ev['metrics'][key]:.4g}"
        except Exception:  # a damaged run is still listed
            row["status"] = "unreadable"
        rows.append(row)
    return rows
