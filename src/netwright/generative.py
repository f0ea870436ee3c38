"""Stages for generative (GAN) runs: ``sample`` and the generative ``evaluate``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import write_text
from .errors import NetwrightError
from .run import Run, writes_run

EVAL_SAMPLES = 1000


def model_task(run: Run) -> str | None:
    """The task a run's model is registered for (adversarial, contrastive, control, ...), or None
    for the families that fit any supervised data."""
    from .models import MODELS

    return MODELS.get(run.spec.model.name).meta.get("task")


def is_generative(run: Run) -> bool:
    return model_task(run) == "adversarial"


def require_supervised(run: Run, stage: str) -> None:
    """Stages that read predictions (predict, explain, compress, audit) apply to classifiers and
    regressors, not to a GAN, a language model or a translation model."""
    if is_generative(run):
        raise NetwrightError(f"{stage} applies to supervised models; {run.path} is a GAN: use "
                             f"'netwright sample {run.path}' or 'netwright evaluate {run.path}'")
    if model_task(run) == "contrastive":
        raise NetwrightError(f"{stage} applies to supervised models; {run.path} is a self-supervised encoder: train "
                             f"a classifier on it (train.init_from: {run.path}, train.freeze: [features])")
    task = run.info.task
    if task == "detection":
        raise NetwrightError(f"{stage} applies to classifiers and regressors; {run.path} is an object detector: "
                             f"'netwright predict {run.path} scene.png' finds boxes, 'netwright evaluate' scores them")
    if task == "control" and stage in ("audit", "compress"):
        raise NetwrightError(f"{stage} applies to classifiers and regressors; {run.path} is a control policy: "
                             f"evaluate it with 'netwright evaluate {run.path}' (it plays the test episodes)")
    if task in ("language_model", "translation"):
        kind = "a language model" if task == "language_model" else "a translation model"
        raise NetwrightError(f"{stage} applies to classifiers and regressors; {run.path} is {kind}: "
                             f"use 'netwright generate {run.path} --prompt ...'")


def _judge(run: Run):
    from .tasks.adversarial import Judge

    if not run.has("judge/model.safetensors"):
        raise NetwrightError(f"{run.path}: the judge classifier is missing (judge/); retrain the GAN")
    return Judge(Run.open(run.file("judge")).load_model())


def generate(run: Run, n: int, label: int | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` samples in the data's normalised space, and their classes for a conditional model."""
    model = run.load_model()
    info = run.info
    if n < 1:
        raise NetwrightError(f"--n {n}: ask for at least one sample")
    labels = None
    if label is not None:
        if not model.conditional:
            raise NetwrightError(f"{run.path} is an unconditional GAN: it cannot generate a chosen class; train with "
                                 "model.conditional: true")
        if not 0 <= label < info.num_classes:
            raise NetwrightError(f"--class {label}: classes are 0..{info.num_classes - 1} "
                                 f"({', '.join(info.class_names[:10])}...)")
        labels = torch.full((n,), label)
    elif model.conditional:
        labels = torch.arange(n) % info.num_classes
    with torch.no_grad():
        x = model.sample(n, labels=labels, generator=torch.Generator().manual_seed(seed))
    return x, labels


def raw_values(run: Run, x: torch.Tensor) -> np.ndarray:
    """Normalised samples back in the data's units."""
    pre = run.info.preprocess
    a = x.numpy().astype(np.float64)
    if "mean" not in pre:
        return a
    mean, std = np.asarray(pre["mean"]), np.asarray(pre["std"])
    if pre["kind"] != "table":
        shape = (1, -1) + (1,) * (a.ndim - 2)
        mean, std = mean.reshape(shape), std.reshape(shape)
    return a * std + mean


@writes_run("netwright sample")
def sample(run: Run | str | os.PathLike, n: int = 64, label: int | None = None, out: str | os.PathLike | None = None,
           seed: int = 0) -> Path:
    """Generate ``n`` samples: a picture grid for images, a CSV in the data's columns for tables."""
    run = run if isinstance(run, Run) else Run.open(run)
    if not is_generative(run):
        raise NetwrightError(f"{run.path} is not a GAN; 'sample' generates from GAN runs (model.name: gan)")
    info = run.info
    x, labels = generate(run, n, label, seed)
    raw = raw_values(run, x)
    if info.modality == "image":
        path = Path(out) if out else run.file("samples") / (f"class-{label}.png" if label is not None else "grid.png")
        return _grid(raw, info, labels, path)
    path = Path(out) if out else run.file("samples") / (f"class-{label}.csv" if label is not None else "samples.csv")
    return _table(raw, info, labels, path)


def _grid(raw: np.ndarray, info, labels, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plots import save_figure

    n = len(raw)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    lo, hi = info.preprocess.get("range", (raw.min(), raw.max()))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.8, rows * 0.8 + (0.3 if labels is not None else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            img = np.clip((raw[i] - lo) / (hi - lo), 0, 1).transpose(1, 2, 0)
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
            if labels is not None and i < cols:
                ax.set_title(info.class_names[int(labels[i])], fontsize=9)
    fig.subplots_adjust(wspace=0.05, hspace=0.05 if labels is None else 0.3)
    return save_figure(fig, path)


def _table(raw: np.ndarray, info, labels, path: Path) -> Path:
    import csv
    import io

    columns = info.preprocess["columns"]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([c["name"] for c in columns] + ([info.target_name or "class"] if labels is not None else []))
    for i, row in enumerate(raw):
        cells, j = [], 0
        for c in columns:
            if c["kind"] == "numeric":
                cells.append(f"{row[j]:.6g}")
                j += 1
            else:
                k = len(c["categories"])
                cells.append(c["categories"][int(np.argmax(row[j:j + k]))])
                j += k
        writer.writerow(cells + ([info.class_names[int(labels[i])]] if labels is not None else []))
    return write_text(path, buf.getvalue())


def evaluate_generative(run: Run, plots: bool = True) -> dict[str, Any]:
    """Frechet distance to the test split for the GAN, an untrained generator and Gaussian noise;
    the judged class histogram; for a conditional GAN, how often class k is judged as k."""
    from .metrics import frechet_distance
    from .models import build_model
    from .tasks.adversarial import MODE_SHARE

    data = run.load_data()
    test = data.split("test")
    info = data.info
    judge = _judge(run)
    real, _ = judge(test.x)
    model = run.load_model()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        fake = model.sample(EVAL_SAMPLES, generator=g)
        torch.manual_seed(run.spec.seed)
        untrained = build_model(run.spec.model.name, info, **run.spec.model.params).eval().sample(
            EVAL_SAMPLES, generator=torch.Generator().manual_seed(0))
    noise = torch.randn((EVAL_SAMPLES, *info.input_shape), generator=torch.Generator().manual_seed(0))
    feats, classes = judge(fake)
    share = np.bincount(classes, minlength=info.num_classes) / EVAL_SAMPLES
    metrics = {"fid": frechet_distance(real, feats),
               "fid_untrained_generator": frechet_distance(real, judge(untrained)[0]),
               "fid_gaussian_noise": frechet_distance(real, judge(noise)[0]),
               "fid_real_train_vs_test": frechet_distance(real, judge(data.train.x)[0]),
               "modes": int((share >= MODE_SHARE).sum()), "min_class_share": float(share.min())}
    result: dict[str, Any] = {"split": "test", "n": len(test), "task": "adversarial", "samples": EVAL_SAMPLES,
                              "metrics": metrics, "class_share": dict(zip(info.class_names, share.tolist())),
                              "mode_share_threshold": MODE_SHARE}
    if model.conditional:
        per = EVAL_SAMPLES // info.num_classes
        labels = torch.arange(info.num_classes).repeat_interleave(per)
        with torch.no_grad():
            judged = judge(model.sample(len(labels), labels=labels, generator=torch.Generator().manual_seed(1)))[1]
        hits = judged == labels.numpy()
        metrics["conditional_accuracy"] = float(hits.mean())
        result["conditional_accuracy_per_class"] = {
            name: float(hits[labels.numpy() == k].mean()) for k, name in enumerate(info.class_names)}
    run.write_json("eval.json", result)
    if plots and info.modality == "image":
        sample(run, n=64, out=run.file("eval") / "samples.png")
        history = run.metrics()
        if history:
            from .plots import curves_plot

            curves_plot(history, run.file("eval") / "curves.png")
    return result
