"""Deployment: ONNX export verified by ONNX Runtime (later: the inference server)."""

from .export import export, verify
from .onnx_io import export_onnx, onnx_session

__all__ = ["export", "export_onnx", "onnx_session", "verify"]
