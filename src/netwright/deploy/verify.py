"""An exported ONNX file checked by ONNX Runtime against the PyTorch model it came from."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..atomic import write_with
from ..errors import NetwrightError, ResultUnmet
from .onnx_io import onnx_session, run_session, variable_length

if TYPE_CHECKING:
    from ..run import Run

FP32_TOLERANCE = 1e-4     # max |diff| of outputs, fp32 export
INT8_AGREEMENT = 0.95     # share of test inputs with the same predicted class, int8 models


def verify(run: Run, onnx_path: str | os.PathLike, task: Any, quantized: bool = False, samples: int = 512,
           reference: torch.nn.Module | None = None) -> dict[str, Any]:
    """Compare ONNX Runtime's outputs with PyTorch's on test inputs.

    fp32 models must agree to ``FP32_TOLERANCE`` (max absolute difference); int8 models are
    compared with the fp32 PyTorch model and must pick the same class for at least
    ``INT8_AGREEMENT`` of the inputs (regression: report the difference only). ``task`` (the
    run's kind, ``netwright.tasks.run_task(run)``) says whether outputs are classes and which
    inputs check the length axis.
    """
    data = run.load_data()
    split = data.test if data.test is not None else data.val or data.train
    x, other = task.export_inputs(split.x[:samples])
    model = reference if reference is not None else run.load_model()
    with torch.no_grad():
        expected = model(x).numpy()
    session = onnx_session(onnx_path)
    got = run_session(session, x.numpy())
    if got.shape != expected.shape:
        raise NetwrightError(f"{onnx_path}: outputs of shape {got.shape}, PyTorch gives {expected.shape}; "
                             "this ONNX file is not this run's model")
    diff = float(np.abs(got - expected).max())
    result: dict[str, Any] = {"onnx": str(onnx_path), "samples": len(x), "max_abs_diff": diff,
                              "quantized": quantized}
    if task.picks_class:
        result["argmax_agreement"] = float((got.argmax(1) == expected.argmax(1)).mean())
    if quantized:
        result["criterion"] = f"argmax agreement >= {INT8_AGREEMENT}"
        result["passed"] = result.get("argmax_agreement", 1.0) >= INT8_AGREEMENT
    else:
        result["criterion"] = f"max |diff| <= {FP32_TOLERANCE:g}"
        result["passed"] = diff <= FP32_TOLERANCE
    if variable_length(model, run.info):  # another length runs too: the length axis is dynamic
        with torch.no_grad():
            result["variable_length_diff"] = float(np.abs(run_session(session, other.numpy())
                                                          - model(other).numpy()).max())
    return result


def export_generator_verified(run: Run, target: Path, samples: int) -> dict[str, Any]:
    """Export a GAN's generator and compare ONNX Runtime with PyTorch on random noise."""
    from .onnx_io import export_generator, generator_inputs

    model = run.load_model()
    export_generator(model, target)
    inputs = generator_inputs(model, samples, seed=1)
    session = onnx_session(target)
    got = session.run(None, {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs)})[0]
    with torch.no_grad():
        expected = model.generator(*inputs).numpy() if model.conditional else model.generator(inputs[0]).numpy()
    diff = float(np.abs(got - expected).max())
    result = {"onnx": str(target), "samples": samples, "max_abs_diff": diff, "quantized": False,
              "inputs": [i.name for i in session.get_inputs()], "criterion": f"max |diff| <= {FP32_TOLERANCE:g}",
              "passed": diff <= FP32_TOLERANCE, "variant": "generator", "size_bytes": target.stat().st_size}
    return result


def export_verified(run: Run, task: Any, variant: str | None = None, samples: int = 512) -> dict[str, Any]:
    """Write ``export/model.onnx`` (``export/<variant>/model.onnx``) and ``verify.json`` beside
    it: the run's own model as its kind (``task``) exports it, or a compressed variant.

    Raises:
        NetwrightError: an unknown variant, or a verification that fails (``verify.json`` says why).
    """
    folder = run.file("export") if variant is None else run.file("export") / variant
    target = folder / "model.onnx"
    if variant is None:
        result = task.export(run, target, samples)
    else:
        from ..compress.variants import load_variant
        from .onnx_io import export_onnx

        v = load_variant(run, variant)
        quantized = v.meta.get("quantized", False)
        if v.onnx_path is not None:
            write_with(target, lambda tmp: shutil.copyfile(v.onnx_path, tmp))
        else:
            export_onnx(v.module, run.info, target)
        # a pruned model is checked against itself; an int8 model against the fp32 original
        result = verify(run, target, task, quantized=quantized, samples=samples,
                        reference=None if quantized else v.module)
    result = {**result, "variant": result.get("variant") or variant or "original",
              "size_bytes": Path(target).stat().st_size}
    run.write_json(str(Path(target).parent.relative_to(run.path) / "verify.json"), result)
    if not result["passed"]:
        raise ResultUnmet(f"ONNX verification failed for {result['variant']}: {result['criterion']} not met "
                             f"(max |diff| {result['max_abs_diff']:.3g}); see {folder / 'verify.json'}")
    return result
