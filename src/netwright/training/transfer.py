"""Starting from another run's weights (``train.init_from``) and keeping some fixed (``train.freeze``)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ..errors import NetwrightError
from ..run import WEIGHTS


def init_from(model: nn.Module, source: str) -> tuple[int, int]:
    """Copy every tensor of ``source``'s model.safetensors whose name and shape match one of
    ``model``'s; returns (copied, tensors in the model). None matching is an error."""
    from .checkpoint import read_weights

    path = Path(source) / WEIGHTS
    if not path.is_file():
        raise NetwrightError(f"train.init_from: {path} is missing; give a finished run's directory")
    tensors, _ = read_weights(path)
    own = model.state_dict()
    match = {k: v for k, v in tensors.items() if k in own and own[k].shape == v.shape}
    if not match:
        raise NetwrightError(f"train.init_from: no tensor of {source} fits this model (names and shapes differ); "
                             "start from a run of the same family and layer sizes")
    model.load_state_dict(match, strict=False)
    return len(match), len(own)


def freeze(model: nn.Module, prefixes: list[str]) -> list[nn.Module]:
    """Stop training the parameters under ``prefixes``; returns the frozen modules, which the
    trainer keeps in eval mode (batch-norm statistics stay as they were)."""
    modules = dict(model.named_modules())
    frozen = []
    for prefix in prefixes:
        if prefix not in modules or prefix == "":
            names = ", ".join(n for n in modules if n and "." not in n)
            raise NetwrightError(f"train.freeze: this model has no part '{prefix}'; its parts are {names}")
        for p in modules[prefix].parameters():
            p.requires_grad_(False)
        frozen.append(modules[prefix])
    if prefixes and not any(p.requires_grad for p in model.parameters()):
        raise NetwrightError("train.freeze: every parameter is frozen; nothing would train")
    return frozen
