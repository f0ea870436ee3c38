"""Pictures written by the stages (matplotlib, Agg backend, atomic PNG files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .atomic import write_with  # noqa: E402


MIN_FONT_PT = 9  # no text in a picture is smaller: the card shows pictures at (nearly) their pixel size
DPI = 110


def save_figure(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` as PNG atomically and close it; text under ``MIN_FONT_PT`` is raised to it."""
    from matplotlib.text import Text

    fig.draw_without_rendering()  # creates the tick labels, which exist only once the figure is laid out
    for text in fig.findobj(Text):
        if text.get_text() and text.get_fontsize() < MIN_FONT_PT:
            text.set_fontsize(MIN_FONT_PT)
    try:
        return write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight"))
    finally:
        plt.close(fig)


def confusion_plot(cm: list[list[int]], class_names: list[str], path: str | Path, title: str) -> Path:
    """Confusion matrix heat map with counts."""
    cm_arr = np.asarray(cm)
    k = len(class_names)
    size = min(12, 2 + 0.45 * k)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm_arr, cmap="Blues")
    if k <= 30:
        ticks = np.arange(k)
        ax.set_xticks(ticks, class_names, rotation=90 if k > 10 else 0)
        ax.set_yticks(ticks, class_names)
        top = cm_arr.max() or 1
        for i in range(k):
            for j in range(k):
                if cm_arr[i, j]:
                    ax.text(j, i, str(cm_arr[i, j]), ha="center", va="center", fontsize=9,
                            color="white" if cm_arr[i, j] > top / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return save_figure(fig, path)


def reliability_plot(table: list[dict[str, Any]], ece: float, path: str | Path) -> Path:
    """Reliability diagram: accuracy against confidence per bin, with the diagonal."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    used = [b for b in table if b["count"]]
    centers = [(b["lo"] + b["hi"]) / 2 for b in used]
    width = table[0]["hi"] - table[0]["lo"]
    ax.bar(centers, [b["accuracy"] for b in used], width=width * 0.9, color="#4c72b0", label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability (ECE {ece:.3f})")
    ax.legend(loc="upper left")
    return save_figure(fig, path)


def scatter_plot(true: np.ndarray, pred: np.ndarray, path: str | Path, title: str) -> Path:
    """Predicted against true values, with the identity line."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(true, pred, s=10, alpha=0.6)
    lo, hi = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], "--", color="grey")
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    ax.set_title(title)
    return save_figure(fig, path)


def curves_plot(history: list[dict[str, Any]], path: str | Path) -> Path:
    """Learning curves: losses on the left, the other validation metrics on the right."""
    epochs = [r["epoch"] for r in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key in [k for k in history[0] if k.endswith("loss") and not k.startswith("val_") or k == "val_loss"]:
        a.plot(epochs, [r[key] for r in history], label=key)
    a.set_xlabel("epoch")
    a.set_title("loss")
    a.legend()
    others = [k for k in history[0] if k.startswith("val_") and k != "val_loss"]
    for key in others:
        b.plot(epochs, [r[key] for r in history], label=key)
    if any(k.endswith("fid") for k in others):
        b.set_yscale("log")
    b.set_xlabel("epoch")
    b.set_title("validation")
    if others:
        b.legend()
    return save_figure(fig, path)
