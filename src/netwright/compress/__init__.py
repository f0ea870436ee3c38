"""Compression: int8 quantization, structured and unstructured pruning, budget search."""

from .stage import compress
from .variants import Variant, list_variants, load_variant

__all__ = ["Variant", "compress", "list_variants", "load_variant"]
