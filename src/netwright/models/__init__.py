"""Model families: every builder is registered when this package is imported."""

from . import cnn, contrastive, detector, gan, gnn, lm, mlp, ncf, objects, policy, rnn, transformer, unet  # noqa: F401  (registers the families)
from .registry import MODELS, build_model, count_parameters, register_model

__all__ = ["MODELS", "build_model", "count_parameters", "register_model"]
