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
# The exporter's graph rewrites fold batch norm into the preceding convolution; with the large
# per-channel scales a GAN's generator learns, the folded fp32 weights drifted 1.2e-4 from
# PyTorch's outputs, so exports for deployment keep the graph as traced (ONNX Runtime fuses the
# same patterns itself at load time). Quantization wants the rewritten graph (its tools read
# the shapes the rewrites record), where that drift is far below int8 rounding.


def example_input(info: DataInfo, n: int = 2) -> torch.Tensor:
    """A batch of ``n`` inputs of the model's input shape and dtype."""
    if info.modality == "tokens":
        return torch.zeros((n, *info.input_shape), dtype=torch.int64)
    return torch.zeros((n, *info.input_shape), dtype=torch.float32)


class TemperatureScaled(nn.Module):
    """A classifier whose outputs are its logits divided by a fitted temperature (``calibrate``)."""

    def __init__(self, model: nn.Module, temperature: float):
        super().__init__()
        self.model, self.temperature = model, float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) / self.temperature


def variable_length(model: nn.Module, info: DataInfo) -> bool:
    """Whether the model takes sequences of any length: a recurrent net that pools over steps, or
    a language model (any length up to its longest position)."""
    from ..models.lm import CausalLM
    from ..models.rnn import RNN

    if isinstance(model, TemperatureScaled):
        model = model.model
    if isinstance(model, CausalLM):
        return True
    return isinstance(model, RNN) and model.pool != "flatten" and info.modality in ("sequence", "tokens")


def export_onnx(model: nn.Module, info: DataInfo, path: str | Path, optimize: bool = False) -> Path:
    """Write ``model`` as one ONNX file with a dynamic batch axis (and sequence axis where
    the model allows any length); atomic. ``optimize``: apply the exporter's graph rewrites."""
    from ..models.lm import CausalLM

    x = example_input(info)
    dims = {0: torch.export.Dim("batch", min=1)}
    if isinstance(model, CausalLM):  # ids (B, T) -> next-token logits at every step (B, T, V)
        dims[1] = torch.export.Dim("length", min=2, max=model.max_len)
    elif variable_length(model, info):
        dims[x.dim() - 1] = torch.export.Dim("length", min=2)
    return export_module(model, (x,), [INPUT], (dims,), path, optimize)


class GeneratorGraph(nn.Module):
    """A GAN's generator as an exportable graph: noise (and class labels) in, samples out."""

    def __init__(self, gan: nn.Module):
        super().__init__()
        self.generator = gan.generator

    def forward(self, noise: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(noise, label)


def generator_inputs(gan: nn.Module, n: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, gan.latent_dim, generator=g)
    return (z, torch.randint(0, gan.num_classes, (n,), generator=g)) if gan.conditional else (z,)


def export_generator(gan: nn.Module, path: str | Path) -> Path:
    """Write a GAN's generator (inputs ``noise`` and, when conditional, ``label``) as ONNX."""
    batch = torch.export.Dim("batch", min=1)
    inputs = generator_inputs(gan, 2)
    names = ["noise", "label"][: len(inputs)]
    return export_module(GeneratorGraph(gan), inputs, names, tuple({0: batch} for _ in inputs), path)


def export_module(module: nn.Module, inputs: tuple[torch.Tensor, ...], names: list[str], dynamic_shapes: tuple,
                  path: str | Path, optimize: bool = False) -> Path:
    """Export with the torch.export-based exporter, quietly, and write the file atomically."""
    module = module.eval()
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the exporter reports every optional op it skips
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, inputs, dynamo=True, input_names=names, output_names=[OUTPUT],
                                        dynamic_shapes=dynamic_shapes, verbose=False, optimize=optimize)
    except Exception as e:
        raise NetwrightError(f"ONNX export of this {type(module).__name__} failed: {str(e).splitlines()[0][:200]}") from None
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
