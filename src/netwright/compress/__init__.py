"""Compression: int8 quantization, structured and unstructured pruning, measurement, variants
(the ``compress`` stage composes them)."""

from .variants import Variant, list_variants, load_variant

__all__ = ["Variant", "list_variants", "load_variant"]
