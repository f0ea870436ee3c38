"""ONNX export (torch.export-based exporter) and ONNX Runtime sessions."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..atomic import write_with
from ..data.info import DataInfo
from ..errors import NetwrightError

INPUT, OUTPUT = "input", "output"


def example_input(info: DataInfo, n: int = 2) -> torch.Tensor:
    """A batch of ``n`` inputs of the model's input shape and dtype."""
    if info.modality == "tokens":
        return torch.zeros((n, *info.input_shape), dtype=torch.int64)
    return torch.zeros((n, *info.input_shape), dtype=torch.float32)


def variable_length(model: nn.Module, info: DataInfo) -> bool:
    """Whether the model takes sequences of any length (a recurrent net that pools over steps)."""
    from ..models.rnn import RNN

    return isinstance(model, RNN) and model.pool != "flatten" and info.modality in ("sequence", "tokens")


def export_onnx(model: nn.Module, info: DataInfo, path: str | Path) -> Path:
    """Write ``model`` as one ONNX file with a dynamic batch axis (and sequence axis where
    the model allows any length); atomic."""
    model = model.eval()
    x = example_input(info)
    dims = {0: torch.export.Dim("batch", min=1)}
    if variable_length(model, info):
        dims[x.dim() - 1] = torch.export.Dim("length", min=2)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the exporter reports every optional op it skips
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(model, (x,), dynamo=True, input_names=[INPUT], output_names=[OUTPUT],
                                        dynamic_shapes=(dims,), verbose=False)
    except Exception as e:
        raise NetwrightError(f"ONNX export of this {type(model).__name__} failed: {str(e).splitlines()[0][:200]}") from None
    finally:
        quiet.setLevel(level)
    proto = strip_metadata(program.model_proto)
    return write_with(path, lambda tmp: tmp.write_bytes(proto.SerializeToString()))


def strip_metadata(proto):
    """Drop per-node provenance (stack traces, module paths) and cached shapes: they can
    take more room than a small model's weights, and no runtime reads them."""
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    del proto.graph.value_info[:]
    proto.doc_string = ""
    return proto


def onnx_session(path: str | Path, threads: int = 1):
    """An ONNX Runtime CPU session; an unreadable or invalid file fails with one clear line."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise NetwrightError(f"{path}: no such ONNX file")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise NetwrightError(f"{path}: not a valid ONNX model ({str(e).splitlines()[0][:160]})") from None


def run_session(session, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Outputs of ``session`` for ``x``, in batches."""
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i:i + batch_size]})[0] for i in range(0, len(x), batch_size)])
