"""The ``explain`` stage: attributions, pictures and sanity checks -> ``explain/``."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import write_with
from ..errors import NetwrightError
from ..explain import pictures
from ..explain.methods import METHODS, applicable, baseline_for, check_method
from ..explain.sanity import deletion_insertion, randomisation
from ..run import EXPLAIN, Run, writes_run
from ..tasks import run_task

GLOBAL_SAMPLES = 512  # test examples behind the global (mean |attribution|) view of tabular models


def _save_npy(path: Path, array: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)

    write_with(path, write)


def select(run: Run, samples: int, indices: list[int] | None, inputs: Any, split: str):
    """(inputs, true labels or None, indices or None) for the explanation."""
    info = run.info
    if inputs is not None:
        from ..data.inputs import encode_inputs

        x = torch.from_numpy(encode_inputs(info, inputs))
        return x, None, None
    part = run.load_data().split(split)
    n = len(part)
    if indices is None:
        indices = list(range(min(samples, n)))
    for i in indices:
        if not 0 <= i < n:
            raise NetwrightError(f"sample index {i} is out of range: the {split} split has {n} examples (0..{n - 1})")
    if not indices:
        raise NetwrightError("no samples to explain; give --samples N (N >= 1) or --index")
    idx = torch.tensor(indices)
    return part.x[idx], part.y[idx], indices


def explain(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Attribute a run's predictions to its inputs, draw them, and check them (see :func:`_explain`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*required_grads has been set automatically.*")
        warnings.filterwarnings("ignore", message=".*did not already require gradients.*")
        return _explain(*args, **kwargs)


@writes_run("netwright explain")
def _explain(run: Run | str | os.PathLike, methods: list[str] | None = None, samples: int = 8,
            indices: list[int] | None = None, inputs: Any = None, target: int | None = None,
            sanity: bool = True, split: str = "test") -> dict[str, Any]:
    """Attribute a run's predictions to its inputs, draw them, and check them.

    Args:
        methods: attribution methods (default: every one that applies to the model).
        samples: explain the first N examples of ``split`` ...
        indices: ... or these example indices ...
        inputs: ... or raw inputs (a file or array, as for ``predict``).
        target: class to explain (default: the predicted class).
        sanity: run the randomisation and deletion/insertion checks.

    Returns:
        The contents of ``explain/explain.json``.
    """
    run = run if isinstance(run, Run) else Run.open(run)
    task = run_task(run)
    task.require("explain", run)
    info = run.info
    model = run.load_model()
    x, y, idx = select(run, samples, indices, inputs, split)
    names = methods or applicable(model, info)
    chosen = [check_method(m, model, info) for m in names]

    with torch.no_grad():
        out = model(x).double()
    tgt = task.target(out, target)
    decoded = task.decode(out)
    base = baseline_for(info, x)

    folder = run.file("explain")
    attrs: dict[str, np.ndarray] = {}
    result: dict[str, Any] = {"methods": names, "split": split if inputs is None else None, "samples": [],
                              "files": {}, "sanity": {}, "flagged": []}
    for i, d in enumerate(decoded):
        row: dict[str, Any] = {"index": idx[i] if idx else i}
        if "probabilities" in d:
            row.update(prediction=d["label"], confidence=max(d["probabilities"].values()),
                       target=info.class_names[int(tgt[i])])
        else:
            row["prediction"] = d["prediction"]
        if y is not None and (label := task.label(y[i])) is not None:
            row["label"] = label
        result["samples"].append(row)

    for m in chosen:
        a = m.attribute(model, x, tgt, base, info).detach().double()
        if not torch.isfinite(a).all():
            raise NetwrightError(f"method '{m.name}' gave non-finite attributions")
        attrs[m.name] = a.numpy()
        _save_npy(folder / f"{m.name}.npy", attrs[m.name])
        result["files"][m.name] = f"explain/{m.name}.npy"
    if "integrated_gradients" in names:
        result["completeness"] = _completeness(model, x, tgt, base, torch.from_numpy(attrs["integrated_gradients"]))

    if sanity:
        for m in chosen:
            a = torch.from_numpy(attrs[m.name])
            checks: dict[str, Any] = {"randomisation": randomisation(model, m, x, a, base, tgt, info)}
            if task.picks_class:  # deleting what matters most must lower the chosen class
                checks["deletion_insertion"] = deletion_insertion(model, x, a, base, tgt, info)
            result["sanity"][m.name] = checks
            for check, res in checks.items():
                if not res["passed"]:
                    result["flagged"].append({"method": m.name, "check": check, "detail": _why(check, res)})

    if info.modality == "tabular" and inputs is None:
        result["global"] = _global(run, model, [m for m in chosen if m.name != "permutation"], info)
        pictures.global_bars(result["global"], folder / "global.png")
    result["pictures"] = _draw(x, attrs, result["samples"], info, folder)
    run.write_json(EXPLAIN, result)
    return result


def _completeness(model, x, tgt, base, ig: torch.Tensor) -> dict[str, float]:
    """Integrated Gradients' completeness: the sum of the attributions ``ig`` (already computed)
    against f(x) - f(baseline)."""
    with torch.no_grad():
        fx = model(x).double().gather(1, tgt[:, None])[:, 0]
        fb = model(base).double().gather(1, tgt[:, None])[:, 0]
    delta = (ig.flatten(1).sum(1) - (fx - fb)).abs()
    gap = delta / (fx - fb).abs().clamp(min=1e-12)
    return {"mean_relative_gap": float(gap.mean()), "max_relative_gap": float(gap.max()),
            "mean_abs_gap": float(delta.mean()),
            "definition": "|sum(attributions) - (f(x) - f(baseline))| / |f(x) - f(baseline)|, target logit"}


def _why(check: str, res: dict[str, Any]) -> str:
    if check == "randomisation":
        return (f"attributions stay correlated ({res['final']:.2f}) with those of a fully randomised model; "
                "they do not reflect what the network learned")
    return (f"deletion AUC {res['deletion_auc']:.3f} vs random {res['random_deletion_auc']:.3f}, insertion AUC "
            f"{res['insertion_auc']:.3f} vs random {res['random_insertion_auc']:.3f}: no better than a random ordering")


def _global(run: Run, model, chosen, info) -> dict[str, dict[str, float]]:
    """Mean |attribution| per feature over (up to GLOBAL_SAMPLES of) the test split."""
    part = run.load_data().split("test")
    x = part.x[:GLOBAL_SAMPLES]
    with torch.no_grad():
        out = model(x)
    tgt = run_task(run).target(out)
    base = baseline_for(info, x)
    names = info.feature_names or [f"x{i}" for i in range(x.shape[1])]
    return {m.name: dict(zip(names, m.attribute(model, x, tgt, base, info).detach().abs().mean(0).tolist()))
            for m in chosen}


def _draw(x: torch.Tensor, attrs: dict[str, np.ndarray], rows: list[dict], info, folder: Path) -> list[str]:
    titles = []
    for r in rows:
        t = f"pred {r['prediction']}" if isinstance(r["prediction"], str) else f"pred {r['prediction']:.3g}"
        if "confidence" in r:
            t += f" ({r['confidence']:.2f})"
        if "label" in r:
            t += f", true {r['label']}" if isinstance(r["label"], str) else f", true {r['label']:.3g}"
        titles.append(t)
    if not attrs:
        return []
    if info.modality == "image":
        path = pictures.image_grid(info.raw(x), attrs, titles, folder / "overlay.png")
    elif info.modality == "sequence":
        path = pictures.sequence_shading(info.raw(x), attrs, titles, folder / "sequences.png")
    elif info.modality == "tabular":
        names = info.feature_names or [f"x{i}" for i in range(x.shape[1])]
        path = pictures.feature_bars(attrs, names, titles, folder / "features.png")
    else:
        kind = info.preprocess.get("tokenizer", {}).get("kind")  # text from a tokenizer: id 0 pads the end
        sep = " " if kind == "word" else ""
        texts = [[info.vocab[int(t)] + sep for t in row if not (kind and int(t) == 0)] for row in x]
        path = pictures.token_text(texts, attrs, titles, folder / "tokens.png")
    return [f"explain/{path.name}"] + (["explain/global.png"] if info.modality == "tabular" and (folder / "global.png").exists() else [])


__all__ = ["METHODS", "explain"]
