"""Attribution methods (Captum), each with the models and inputs it applies to.

Every method returns attributions shaped like the model input, ``(B, *input_shape)``, or
``(B, L)`` for token inputs (one score per token, summed over the embedding).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..data.info import DataInfo
from ..errors import NetwrightError
from ..models.cnn import CNN
from ..models.transformer import TransformerClassifier


@dataclass(frozen=True)
class Method:
    name: str
    summary: str
    applies: Callable[[nn.Module, DataInfo], str | None]  # None: applies; else why not
    attribute: Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, DataInfo], torch.Tensor]
    signed: bool = True


def baseline_for(info: DataInfo, x: torch.Tensor) -> torch.Tensor:
    """The reference input: raw zero (a black image, a flat signal) for images and sequences,
    the training mean for tabular rows, token id 0 for text."""
    if info.modality == "tokens":
        return torch.zeros_like(x)
    pre = info.preprocess
    if info.modality in ("image", "sequence") and "mean" in pre:
        mean = torch.tensor(pre["mean"], dtype=x.dtype)
        std = torch.tensor(pre["std"], dtype=x.dtype)
        zero = (-mean / std).reshape(1, -1, *([1] * (x.dim() - 2)))
        return zero.expand_as(x).clone()
    return torch.zeros_like(x)


def embedding_layer(model: nn.Module) -> nn.Embedding:
    return next(m for m in model.modules() if isinstance(m, (nn.Embedding,)))


def last_conv(model: nn.Module) -> nn.Module:
    return [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))][-1]


# ---------------------------------------------------------------------- applicability


def any_model(model: nn.Module, info: DataInfo) -> str | None:
    return None


def differentiable_inputs(model: nn.Module, info: DataInfo) -> str | None:
    """Gradients need inputs the output varies with smoothly: not id columns (users, items)."""
    ids = [c["name"] for c in info.preprocess.get("columns", []) if c["kind"] == "id"]
    return f"its inputs {', '.join(ids)} are ids, not quantities; use occlusion, feature_ablation or permutation" \
        if ids else None


def float_inputs(model: nn.Module, info: DataInfo) -> str | None:
    if info.modality == "tokens":
        return "it needs continuous inputs; use integrated_gradients, saliency or occlusion for text"
    return differentiable_inputs(model, info)


def conv_models(model: nn.Module, info: DataInfo) -> str | None:
    return None if isinstance(model, CNN) else f"Grad-CAM needs a convolutional model; this is {type(model).__name__}"


def tabular_only(model: nn.Module, info: DataInfo) -> str | None:
    return None if info.modality == "tabular" else f"it perturbs tabular features; this data is {info.modality}"


def transformer_only(model: nn.Module, info: DataInfo) -> str | None:
    return None if isinstance(model, TransformerClassifier) else \
        f"attention rollout needs a Transformer; this is {type(model).__name__}"


# ---------------------------------------------------------------------- methods


def _saliency(model, x, target, baseline, info):
    from captum.attr import LayerGradientXActivation, Saliency

    if info.modality == "tokens":  # gradient size at each token's embedding
        grads = LayerGradientXActivation(model, embedding_layer(model), multiply_by_inputs=False).attribute(x, target=target)
        return grads.norm(dim=-1)
    return Saliency(model).attribute(x, target=target, abs=True)


def integrated_gradients(model, x, target, baseline, info, steps: int = 128):
    from captum.attr import IntegratedGradients, LayerIntegratedGradients

    if info.modality == "tokens":  # on the embeddings, summed over their width: one number per token
        attr = LayerIntegratedGradients(model, embedding_layer(model)).attribute(
            x, baselines=baseline, target=target, n_steps=steps).sum(-1)
        wide = getattr(model, "wide", None)  # a linear n-gram path: its exact share per token
        return attr if wide is None else attr + wide.token_shares(x, target).to(attr.dtype)
    return IntegratedGradients(model).attribute(x, baselines=baseline, target=target, n_steps=steps)


def _smoothgrad(model, x, target, baseline, info):
    from captum.attr import NoiseTunnel, Saliency

    return NoiseTunnel(Saliency(model)).attribute(x, target=target, nt_type="smoothgrad", nt_samples=25,
                                                 stdevs=0.15, abs=True)


def _gradcam(model, x, target, baseline, info):
    from captum.attr import LayerAttribution, LayerGradCam

    cam = LayerGradCam(model, last_conv(model)).attribute(x, target=target, relu_attributions=True)  # (B, 1, ...)
    if info.modality in ("tabular", "tokens"):  # the CNN reads these as one-channel sequences: (B, 1, L)
        return LayerAttribution.interpolate(cam, (x.shape[1],), interpolate_mode="linear")[:, 0]
    size = tuple(x.shape[2:])
    cam = LayerAttribution.interpolate(cam, size, interpolate_mode="bilinear" if len(size) == 2 else "linear")
    return cam.expand_as(x)


def occlusion_window(info: DataInfo) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Sliding window and strides: about a quarter of an image side, a tenth of a sequence."""
    shape = info.input_shape
    if info.modality == "image":
        k = max(1, min(shape[1:]) // 4)
        return (shape[0], k, k), (shape[0], max(1, k // 2), max(1, k // 2))
    if info.modality == "sequence":
        k = max(1, shape[1] // 10)
        return (shape[0], k), (shape[0], max(1, k // 2))
    return (1,), (1,)


def _occlusion(model, x, target, baseline, info):
    from captum.attr import Occlusion

    window, strides = occlusion_window(info)
    return Occlusion(model).attribute(x, sliding_window_shapes=window, strides=strides, baselines=baseline,
                                      target=target, perturbations_per_eval=16)


def _feature_ablation(model, x, target, baseline, info):
    from captum.attr import FeatureAblation

    return FeatureAblation(model).attribute(x, baselines=baseline, target=target)


def _permutation(model, x, target, baseline, info):
    from captum.attr import FeaturePermutation

    if len(x) < 2:
        raise NetwrightError("permutation needs at least 2 samples to permute features between; use --samples 2 or more")
    return FeaturePermutation(model).attribute(x, target=target)


def _attention_rollout(model, x, target, baseline, info):
    from .rollout import attention_rollout

    return attention_rollout(model, x, info)


METHODS: dict[str, Method] = {m.name: m for m in [
    Method("saliency", "vanilla gradient |d output / d input| (Simonyan et al. 2014)", differentiable_inputs,
           _saliency, False),
    Method("integrated_gradients", "path integral of gradients from a baseline (Sundararajan et al. 2017)",
           differentiable_inputs, integrated_gradients),
    Method("smoothgrad", "saliency averaged over noisy copies (Smilkov et al. 2017)", float_inputs, _smoothgrad, False),
    Method("gradcam", "class activation of the last convolution (Selvaraju et al. 2017)", conv_models, _gradcam, False),
    Method("occlusion", "output drop when a window is replaced by the baseline (Zeiler & Fergus 2014)",
           any_model, _occlusion),
    Method("feature_ablation", "output change when one feature is set to its mean", tabular_only, _feature_ablation),
    Method("permutation", "output change when one feature is shuffled across samples", tabular_only, _permutation),
    Method("attention_rollout", "attention flow through the layers (Abnar & Zuidema 2020)", transformer_only,
           _attention_rollout, False),
]}


def applicable(model: nn.Module, info: DataInfo) -> list[str]:
    """Names of the methods that apply to this model and data."""
    return [name for name, m in METHODS.items() if m.applies(model, info) is None]


def check_method(name: str, model: nn.Module, info: DataInfo) -> Method:
    """The method ``name``; an unknown or inapplicable one fails with the reason."""
    from ..registry import did_you_mean

    if name not in METHODS:
        raise NetwrightError(f"unknown method '{name}'; {did_you_mean(name, METHODS)}known: {', '.join(METHODS)}")
    reason = METHODS[name].applies(model, info)
    if reason:
        raise NetwrightError(f"method '{name}' does not apply: {reason}; applicable: "
                             f"{', '.join(applicable(model, info))}")
    return METHODS[name]
