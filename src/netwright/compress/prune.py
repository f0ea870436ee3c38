"""Pruning: structured channel pruning that really shrinks the network (Torch-Pruning),
and unstructured magnitude pruning (zeros in place; no speed-up unless measured)."""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
from torch import nn

from ..data.info import DataInfo
from ..errors import NetwrightError

STRUCTURED = ("mlp", "cnn", "transformer")


def _linear_widths(layers: nn.Module) -> list[int]:
    """Hidden widths of a dense stack (every Linear but the last)."""
    return [m.out_features for m in layers.modules() if isinstance(m, nn.Linear)][:-1]


def pruned_params(name: str, module: nn.Module, params: dict[str, Any]) -> dict[str, Any]:
    """The builder hyper-parameters that describe a pruned ``module``."""
    params = dict(params)
    if name == "mlp":
        params["hidden"] = _linear_widths(module.layers)
    elif name == "cnn":
        convs = [m for m in module.features if isinstance(m, (nn.Conv1d, nn.Conv2d))]
        per_block = params["convs_per_block"]
        blocks = [convs[i:i + per_block] for i in range(0, len(convs), per_block)]
        widths = [{c.out_channels for c in block} for block in blocks]
        if any(len(w) != 1 for w in widths):
            raise NetwrightError("pruning left convolutions of one block with different widths; "
                                 "use convs_per_block: 1 or another ratio")
        params["channels"] = [w.pop() for w in widths]
        params["hidden"] = _linear_widths(module.head)
    elif name == "transformer":
        params["d_model"] = module.encoder.layers[0].self_attn.embed_dim
        params["ff_dim"] = module.encoder.layers[0].linear1.out_features
        params["hidden"] = _linear_widths(module.head)
        if params["d_model"] % params["heads"]:
            raise NetwrightError(f"pruning left d_model {params['d_model']}, not divisible by {params['heads']} heads")
    return params


def prune_structured(name: str, module: nn.Module, info: DataInfo, params: dict[str, Any],
                     ratio: float) -> tuple[nn.Module, dict[str, Any]]:
    """Remove ``ratio`` of the channels/units of every prunable layer (L2 magnitude, Torch-Pruning).

    Returns the rebuilt smaller model (its own builder, pruned weights loaded) and its
    hyper-parameters, so that it is stored as configuration + safetensors.
    """
    import torch_pruning as tp

    from ..deploy.onnx_io import example_input
    from ..models import build_model

    if name not in STRUCTURED:
        raise NetwrightError(f"structured pruning supports {', '.join(STRUCTURED)} models, not {name}; "
                             "use --sparsity for unstructured magnitude pruning")
    if not 0 < ratio < 1:
        raise NetwrightError(f"--prune {ratio}: the ratio must be between 0 and 1")
    work = copy.deepcopy(module).eval()
    output_layer = [m for m in work.modules() if isinstance(m, nn.Linear)][-1]
    ignored: list[nn.Module] = [output_layer]
    if name == "transformer":  # keep attention heads whole: prune the model width and feed-forward blocks
        ignored += [m for m in work.modules() if isinstance(m, nn.Embedding)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = tp.pruner.MetaPruner(work, example_input(info, 2), importance=tp.importance.GroupMagnitudeImportance(p=2),
                                      pruning_ratio=ratio, ignored_layers=ignored, round_to=None)
        pruner.step()
    new_params = pruned_params(name, work, params)
    rebuilt = build_model(name, info, **new_params)
    try:
        rebuilt.load_state_dict(work.state_dict(), strict=True)
    except RuntimeError as e:
        raise NetwrightError(f"structured pruning of this {name} did not give a model its builder can describe "
                             f"({str(e).splitlines()[0][:120]})") from None
    return rebuilt, new_params


def prune_unstructured(module: nn.Module, sparsity: float) -> nn.Module:
    """Zero the ``sparsity`` smallest-magnitude weights across all weight matrices and kernels."""
    from torch.nn.utils import prune

    if not 0 < sparsity < 1:
        raise NetwrightError(f"--sparsity {sparsity}: must be between 0 and 1")
    work = copy.deepcopy(module)
    targets = [(m, name) for m in work.modules() for name, p in m.named_parameters(recurse=False)
               if p.dim() > 1 and "weight" in name]
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=sparsity)
    for m, name in targets:
        prune.remove(m, name)
    return work
