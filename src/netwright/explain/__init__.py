"""Explanations: attribution methods (Captum), pictures and sanity checks (the ``explain`` stage composes them)."""

from .methods import METHODS, applicable

__all__ = ["METHODS", "applicable"]
