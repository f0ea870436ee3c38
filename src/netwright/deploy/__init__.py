"""Deployment: ONNX export verified by ONNX Runtime, the inference server and its protocol
(the ``export`` and ``serve`` stages compose them)."""

from .onnx_io import export_onnx, onnx_session
from .verify import verify

__all__ = ["export_onnx", "onnx_session", "verify"]
