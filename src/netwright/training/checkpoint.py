"""Weights and resumable checkpoints as safetensors + JSON (never pickle).

A checkpoint is one ``.safetensors`` file: model weights, the best weights so far,
optimizer state tensors, and (in its metadata) the JSON trainer state: epoch,
optimizer hyper-parameters, scheduler, early-stopping counters, history. One file
written atomically means a checkpoint is either the old one or the new one, never
a mix. ``last.json`` beside it is the same state, readable by people.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from ..atomic import write_json, write_with
from ..errors import CheckpointError

META_KEY = "netwright"


def save_weights(path: str | Path, state: dict[str, torch.Tensor], meta: dict[str, Any] | None = None) -> Path:
    """Atomically write a flat dict of tensors to ``path`` (safetensors)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    metadata = {META_KEY: json.dumps(meta)} if meta is not None else None

    def write(tmp: Path) -> None:
        try:
            save_file(tensors, str(tmp), metadata=metadata)
        except SafetensorError as e:  # an I/O error (a full disk) reads as the OSError it is
            code = re.search(r"os error (\d+)", str(e))
            if code is None:
                raise
            raise OSError(int(code[1]), os.strerror(int(code[1])), str(path)) from None

    return write_with(path, write)


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Read a safetensors file written by :func:`save_weights`; damage fails with one line."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw_meta = (f.metadata() or {}).get(META_KEY)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = json.loads(raw_meta) if raw_meta else None
    except Exception as e:  # safetensors raises several kinds for truncated or foreign files
        raise CheckpointError(f"{path}: damaged or not a safetensors file ({str(e).splitlines()[0][:120]}); "
                              "retrain, or resume from an intact checkpoint") from None
    return tensors, meta


def load_model_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load weights into ``model``; a file for another architecture fails clearly."""
    tensors, _ = read_weights(path)
    _load_state(model, tensors, path)
    return model


def _load_state(model: nn.Module, tensors: dict[str, torch.Tensor], path: str | Path) -> None:
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise CheckpointError(f"{path}: weights do not fit this model ({first[:160]}); "
                              "was the spec changed after training?") from None


def save_checkpoint(folder: Path, model: nn.Module, optimizers: list[torch.optim.Optimizer],
                    schedulers: list[Any], best: dict[str, torch.Tensor] | None, state: dict[str, Any],
                    rng: dict[str, torch.Tensor] | None = None, ema: dict[str, torch.Tensor] | None = None) -> None:
    """Write ``last.safetensors`` (everything needed to resume) and ``last.json``; ``rng`` holds
    random generator states for a checkpoint taken inside an epoch, ``ema`` the moving average of
    the weights (``train.ema``)."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"rng.{k}": v for k, v in (rng or {}).items()})
    if best is not None:
        tensors.update({f"best.{k}": v for k, v in best.items()})
    if ema is not None:
        tensors.update({f"ema.{k}": v for k, v in ema.items()})
    opt_meta = []
    for i, opt in enumerate(optimizers):
        sd = opt.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for pid, st in sd["state"].items():
            for key, val in st.items():
                if torch.is_tensor(val):
                    tensors[f"optim{i}.{pid}.{key}"] = val
                else:
                    scalars.setdefault(str(pid), {})[key] = val
        opt_meta.append({"param_groups": sd["param_groups"], "scalars": scalars})
    full = {**state, "optimizers": opt_meta, "schedulers": [s.state_dict() for s in schedulers]}
    save_weights(folder / "last.safetensors", tensors, full)
    write_json(folder / "last.json", full)


def _match_layouts(opt: torch.optim.Optimizer) -> None:
    """Give restored optimizer state the memory layout of its parameter (channels-last
    weights): kernels take other code paths for other strides, and a resumed run must
    compute exactly what the uninterrupted one did."""
    for group in opt.param_groups:
        for p in group["params"]:
            state = opt.state.get(p, {})
            for key, value in state.items():
                if torch.is_tensor(value) and value.shape == p.shape and value.stride() != p.stride():
                    state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


def load_checkpoint(folder: Path, model: nn.Module, optimizers: list[torch.optim.Optimizer],
                    schedulers: list[Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    """Restore model, optimizers and schedulers in place; returns (trainer state, best weights).
    Generator states of a checkpoint taken inside an epoch come back as ``state["rng"]``, the
    weights' moving average as ``state["ema"]`` (``None`` without one)."""
    path = folder / "last.safetensors"
    tensors, state = read_weights(path)
    if state is None or "epoch" not in state:
        raise CheckpointError(f"{path}: not a netwright checkpoint (no trainer state)")
    _load_state(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, path)
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} or None
    state["rng"] = {k[4:]: v for k, v in tensors.items() if k.startswith("rng.")}
    state["ema"] = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")} or None
    if len(state["optimizers"]) != len(optimizers):
        raise CheckpointError(f"{path}: holds {len(state['optimizers'])} optimizers, the task has {len(optimizers)}")
    for i, (opt, meta) in enumerate(zip(optimizers, state["optimizers"])):
        per_param: dict[int, dict[str, Any]] = {}
        prefix = f"optim{i}."
        for k, v in tensors.items():
            if k.startswith(prefix):
                pid, key = k[len(prefix):].split(".", 1)
                per_param.setdefault(int(pid), {})[key] = v
        for pid, scalars in meta["scalars"].items():
            per_param.setdefault(int(pid), {}).update(scalars)
        try:
            opt.load_state_dict({"state": per_param, "param_groups": meta["param_groups"]})
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"{path}: optimizer state does not fit ({e})") from None
        _match_layouts(opt)
    for sched, sd in zip(schedulers, state["schedulers"]):
        sched.load_state_dict(sd)
    return state, best
