"""Compressed variants of a run's model, stored under ``compress/<name>/``.

A variant is either a PyTorch model (``model.safetensors`` plus, for a pruned
architecture, its hyper-parameters in ``variant.json``: no pickle) or an ONNX file
(quantized models). Both predict through the same call, so accuracy and latency are
measured the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import NetwrightError
from ..run import WEIGHTS, Run


@dataclass
class Variant:
    name: str
    meta: dict[str, Any] = field(default_factory=dict)
    module: nn.Module | None = None
    onnx_path: Path | None = None
    _session: Any = None

    def predict(self, x: np.ndarray, threads: int = 1, batch_size: int = 1024) -> np.ndarray:
        """Model outputs for normalised inputs ``x``."""
        if self.onnx_path is not None:
            from ..deploy.onnx_io import onnx_session, run_session

            if self._session is None or self._session.get_session_options().intra_op_num_threads != threads:
                self._session = onnx_session(self.onnx_path, threads)
            return run_session(self._session, x, batch_size)
        torch.set_num_threads(threads)
        t = torch.from_numpy(x)
        with torch.no_grad():
            return torch.cat([self.module(t[i:i + batch_size]) for i in range(0, len(t), batch_size)]).numpy()

    def file(self) -> Path | None:
        """The file that holds the model (its size is the variant's size)."""
        return self.onnx_path if self.onnx_path is not None else self.meta.get("weights")


def variant_dir(run: Run, name: str) -> Path:
    return run.file("compress") / name


def list_variants(run: Run) -> list[str]:
    folder = run.file("compress")
    return sorted(p.name for p in folder.iterdir() if (p / "variant.json").is_file()) if folder.is_dir() else []


def load_variant(run: Run, name: str) -> Variant:
    """Load ``original`` or a variant written by ``compress``."""
    if name == "original":
        return Variant("original", {"kind": "original", "weights": run.file(WEIGHTS)},
                       module=run.load_model())
    folder = variant_dir(run, name)
    if not (folder / "variant.json").is_file():
        known = list_variants(run)
        raise NetwrightError(f"no variant '{name}' in {run.path}/compress; "
                             + (f"known: {', '.join(known)}" if known else "run 'netwright compress' first"))
    meta = run.read_json(f"compress/{name}/variant.json")
    if meta["format"] == "onnx":
        return Variant(name, meta, onnx_path=folder / "model.onnx")
    from ..models import build_model
    from ..training.checkpoint import load_model_weights

    spec = run.spec
    params = meta.get("model", spec.model.params)
    module = build_model(spec.model.name, run.info, **params)
    load_model_weights(module, folder / WEIGHTS)
    return Variant(name, {**meta, "weights": folder / WEIGHTS}, module=module.eval())
