"""The ``export`` stage: a one-file ONNX model, verified by ONNX Runtime against PyTorch."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import NetwrightError
from ..run import Run, writes_run
from .onnx_io import TemperatureScaled, export_onnx, onnx_session, run_session, variable_length

FP32_TOLERANCE = 1e-4     # max |diff| of outputs, fp32 export
INT8_AGREEMENT = 0.95     # share of test inputs with the same predicted class, int8 models


def verify(run: Run, onnx_path: str | os.PathLike, quantized: bool = False, samples: int = 512,
           reference: torch.nn.Module | None = None) -> dict[str, Any]:
    """Compare ONNX Runtime's outputs with PyTorch's on test inputs.

    fp32 models must agree to ``FP32_TOLERANCE`` (max absolute difference); int8 models are
    compared with the fp32 PyTorch model and must pick the same class for at least
    ``INT8_AGREEMENT`` of the inputs (regression: report the difference only).
    """
    data = run.load_data()
    split = data.test if data.test is not None else data.val or data.train
    if run.info.task == "language_model":
        samples = min(samples, 32)  # logits for every step and token: (samples, T, vocabulary)
    x = split.x[:samples]
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
    from ..generative import model_task

    if run.info.picks_class and model_task(run) != "contrastive":  # (an encoder's outputs are embeddings, not classes)
        result["argmax_agreement"] = float((got.argmax(1) == expected.argmax(1)).mean())
    if quantized:
        result["criterion"] = f"argmax agreement >= {INT8_AGREEMENT}"
        result["passed"] = result.get("argmax_agreement", 1.0) >= INT8_AGREEMENT
    else:
        result["criterion"] = f"max |diff| <= {FP32_TOLERANCE:g}"
        result["passed"] = diff <= FP32_TOLERANCE
    if variable_length(model, run.info):  # another length runs too: the length axis is dynamic
        other = x[:4, : x.shape[-1] // 2] if run.info.task == "language_model" else torch.cat([x[:4], x[:4]], dim=-1)
        with torch.no_grad():
            result["variable_length_diff"] = float(np.abs(run_session(session, other.numpy())
                                                          - model(other).numpy()).max())
    return result


def _export_generator(run: Run, samples: int) -> dict[str, Any]:
    """Export a GAN's generator and compare ONNX Runtime with PyTorch on random noise."""
    from .onnx_io import export_generator, generator_inputs

    model = run.load_model()
    target = run.file("export") / "model.onnx"
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
    run.write_json("export/verify.json", result)
    if not result["passed"]:
        raise NetwrightError(f"ONNX verification of the generator failed (max |diff| {diff:.3g})")
    return result


@writes_run("netwright export")
def export(run: Run | str | os.PathLike, variant: str | None = None, format: str = "onnx",
           samples: int = 512, register: str | None = None) -> dict[str, Any]:
    """Export the run's model (or a compressed variant) to ONNX and verify it.

    Writes ``export/model.onnx`` (``export/<variant>/model.onnx``) and ``verify.json`` beside it.
    A run tracked with MLflow (``tracking.json``) gets the verified file as an artefact;
    ``register`` makes it a version of that registered MLflow model (``result["tracking"]``).

    Raises:
        NetwrightError: an unknown format or variant, or a verification that fails.
    """
    run = run if isinstance(run, Run) else Run.open(run)
    if format != "onnx":
        raise NetwrightError(f"--format {format}: only onnx is supported")
    from ..generative import is_generative

    if is_generative(run):
        if variant is not None:
            raise NetwrightError("a GAN has no compressed variants; export it without --variant")
        return _tracked(run, _export_generator(run, samples), register)
    if run.info.task == "translation":
        raise NetwrightError(f"{run.path} is a translation model: ONNX export covers classifiers, regressors, language "
                             "models and GAN generators; translate with 'netwright generate'")
    folder = run.file("export") if variant is None else run.file("export") / variant
    target = folder / "model.onnx"
    quantized = False
    t = 1.0
    if variant is None:
        reference = run.load_model()
        if run.info.task == "classification" and run.has("calibration.json"):  # calibrated: logits / T in the graph
            from ..calibrate import temperature

            t = temperature(run)
            reference = TemperatureScaled(reference, t)
        export_onnx(reference, run.info, target)
    else:
        from ..compress.variants import load_variant

        v = load_variant(run, variant)
        if v.onnx_path is not None:
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(v.onnx_path, target)
            quantized = v.meta.get("quantized", False)
        else:
            export_onnx(v.module, run.info, target)
        # a pruned model is checked against itself; an int8 model against the fp32 original
        reference = None if quantized else v.module
    result = verify(run, target, quantized=quantized, samples=samples, reference=reference)
    result["variant"] = variant or "original"
    result["temperature"] = t  # outputs are logits / T: softmax of them gives the calibrated probabilities
    result["size_bytes"] = Path(target).stat().st_size
    run.write_json(str(Path(target).parent.relative_to(run.path) / "verify.json"), result)
    if not result["passed"]:
        raise NetwrightError(f"ONNX verification failed for {result['variant']}: {result['criterion']} not met "
                             f"(max |diff| {result['max_abs_diff']:.3g}); see {folder / 'verify.json'}")
    return _tracked(run, result, register)


def _tracked(run: Run, result: dict[str, Any], register: str | None) -> dict[str, Any]:
    """The verified file logged to the run's MLflow run (and registered), when there is one."""
    from ..training.tracking import log_export

    logged = log_export(run, result["onnx"], register)
    return {**result, "tracking": logged} if logged else result
