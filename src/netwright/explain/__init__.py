"""Explanations: attribution methods (Captum), pictures and sanity checks."""

from .methods import METHODS, applicable
from .stage import explain

__all__ = ["METHODS", "applicable", "explain"]
