"""A GAN's samples: drawn from the generator (a chosen class for a conditional one), back in the
data's units, written as a picture grid (images) or a CSV in the data's columns (tables)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..atomic import write_text
from ..errors import NetwrightError

if TYPE_CHECKING:
    from ..run import Run


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


def write_samples(run: Run, n: int = 64, label: int | None = None, out: str | Path | None = None,
                  seed: int = 0) -> Path:
    """``n`` samples as a picture grid (images) or a CSV in the data's columns (tables); returns the file."""
    info = run.info
    x, labels = generate(run, n, label, seed)
    raw = info.raw(x)
    if info.modality == "image":
        path = Path(out) if out else run.file("samples") / (f"class-{label}.png" if label is not None else "grid.png")
        return _grid(raw, info, labels, path)
    path = Path(out) if out else run.file("samples") / (f"class-{label}.csv" if label is not None else "samples.csv")
    return _table(raw, info, labels, path)


def _grid(raw: np.ndarray, info, labels, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..plots import save_figure

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


