"""Sanity checks that say whether an explanation can be trusted.

1. Model-parameter randomisation (Adebayo et al. 2018): re-initialise the layers from the
   output down, one more at each step, and measure the Spearman rank correlation between
   the original and the new attributions. Attributions that survive randomisation do not
   explain what the network learned. Positions where the input equals the baseline are left
   out of the ranking (gradient-times-input methods are zero there by construction).
2. Deletion and insertion (Petsiuk et al. 2018): remove (or add back, starting from the
   baseline) the most important positions first and follow the target class probability;
   a faithful ordering drops it sooner (lower deletion AUC) and restores it sooner (higher
   insertion AUC) than a random ordering.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from ..data.info import DataInfo
from .methods import Method

RANDOMISATION_PASS = 0.5   # fully randomised: mean |rank correlation| must fall below this
STEPS = 20                 # deletion/insertion steps
RANDOM_ORDERS = 5


def _positions(attr: torch.Tensor, info: DataInfo) -> torch.Tensor:
    """Importance per position ``(B, P)``: channels summed for images and sequences."""
    if info.modality in ("image", "sequence"):
        return attr.sum(1).flatten(1)
    return attr.flatten(1)


def _mask_positions(x: torch.Tensor, base: torch.Tensor, order: np.ndarray, k: int, info: DataInfo,
                    from_baseline: bool) -> torch.Tensor:
    """Deletion: ``x`` with its first ``k`` positions of ``order`` set to the baseline.
    Insertion (``from_baseline``): the baseline with those positions taken from ``x``."""
    src, dst = (x, base) if from_baseline else (base, x)
    channels = x.shape[0] if info.modality in ("image", "sequence") else 1
    out = dst.clone().reshape(channels, -1)
    idx = order[:k]
    out[:, idx] = src.reshape(channels, -1)[:, idx]
    return out.reshape(x.shape)


@torch.no_grad()
def _curve(model: nn.Module, x: torch.Tensor, base: torch.Tensor, order: np.ndarray, target: int,
           info: DataInfo, insertion: bool) -> float:
    """Area under the target probability as positions are deleted (or inserted) in ``order``."""
    n = len(order)
    ks = np.unique(np.linspace(0, n, STEPS + 1).round().astype(int))
    batch = torch.stack([_mask_positions(x, base, order, int(k), info, from_baseline=insertion) for k in ks])
    probs = torch.softmax(model(batch).double(), dim=1)[:, target].numpy()
    return float(np.trapezoid(probs, ks / n))


def deletion_insertion(model: nn.Module, x: torch.Tensor, attr: torch.Tensor, base: torch.Tensor,
                       target: torch.Tensor, info: DataInfo, seed: int = 0) -> dict[str, Any]:
    """Deletion and insertion AUCs for the attribution ordering and for random orderings."""
    rng = np.random.default_rng(seed)
    imp = _positions(attr.detach(), info).numpy()
    rows = {"deletion_auc": [], "insertion_auc": [], "random_deletion_auc": [], "random_insertion_auc": []}
    for i in range(len(x)):
        order = np.argsort(-imp[i], kind="stable")
        t = int(target[i])
        rows["deletion_auc"].append(_curve(model, x[i], base[i], order, t, info, insertion=False))
        rows["insertion_auc"].append(_curve(model, x[i], base[i], order, t, info, insertion=True))
        for _ in range(RANDOM_ORDERS):
            r = rng.permutation(len(order))
            rows["random_deletion_auc"].append(_curve(model, x[i], base[i], r, t, info, insertion=False))
            rows["random_insertion_auc"].append(_curve(model, x[i], base[i], r, t, info, insertion=True))
    result = {k: float(np.mean(v)) for k, v in rows.items()}
    result["passed"] = (result["deletion_auc"] < result["random_deletion_auc"]
                        and result["insertion_auc"] > result["random_insertion_auc"])
    return result


def _param_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules that own parameters, output layer first."""
    layers = [(n, m) for n, m in model.named_modules()
              if any(True for _ in m.parameters(recurse=False)) and hasattr(m, "reset_parameters")]
    return layers[::-1]


def _reinit(module: nn.Module) -> None:
    module.reset_parameters()
    if isinstance(module, nn.MultiheadAttention):  # its output projection is reset separately
        module.out_proj.reset_parameters()


def randomisation(model: nn.Module, method: Method, x: torch.Tensor, attr: torch.Tensor, base: torch.Tensor,
                  target: torch.Tensor, info: DataInfo, seed: int = 0) -> dict[str, Any]:
    """Cascading randomisation: rank correlation with the original attributions after each layer."""
    torch.manual_seed(seed)
    work = copy.deepcopy(model).eval()
    layers = dict(work.named_modules())
    original = attr.detach().abs().reshape(len(x), -1).numpy()
    same = (x == base).reshape(len(x), -1).numpy()  # left out of the ranking
    steps = [{"layer": "(none: the trained model)", "spearman": 1.0}]
    for name, _ in _param_layers(model):
        _reinit(layers[name])
        new = method.attribute(work, x, target, base, info).detach().abs().reshape(len(x), -1).numpy()
        rhos = []
        for i in range(len(x)):
            keep = ~same[i]
            if keep.sum() < 3 or np.ptp(original[i][keep]) == 0 or np.ptp(new[i][keep]) == 0:
                rhos.append(0.0)
                continue
            rhos.append(float(spearmanr(original[i][keep], new[i][keep]).statistic))
        steps.append({"layer": name or "(model)", "spearman": float(np.mean(rhos))})
    final = abs(steps[-1]["spearman"])
    return {"steps": steps, "final": final, "passed": final < RANDOMISATION_PASS,
            "criterion": f"|rank correlation| after randomising every layer < {RANDOMISATION_PASS}"}
