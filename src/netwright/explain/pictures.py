"""Pictures of attributions: overlays for images, bars for tabular rows, shading for
sequences, highlighted characters for text."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ..plots import save_figure


def _norm(a: np.ndarray) -> np.ndarray:
    m = np.abs(a).max()
    return a / m if m > 0 else a


def image_grid(raw: np.ndarray, attrs: dict[str, np.ndarray], titles: list[str], path: Path) -> Path:
    """Rows: samples; columns: the input, then each method's heat map over the input."""
    n, methods = len(raw), list(attrs)
    fig, axes = plt.subplots(n, 1 + len(methods), figsize=(1.9 * (1 + len(methods)), 1.9 * n), squeeze=False)
    for i in range(n):
        img = raw[i].transpose(1, 2, 0)
        img = img[..., 0] if img.shape[-1] == 1 else (img - img.min()) / max(np.ptp(img), 1e-8)
        axes[i, 0].imshow(img, cmap="gray" if img.ndim == 2 else None)
        axes[i, 0].set_title(titles[i], fontsize=9)
        for j, m in enumerate(methods, start=1):
            heat = _norm(attrs[m][i].sum(0))
            axes[i, j].imshow(img, cmap="gray" if img.ndim == 2 else None)
            signed = heat.min() < 0
            axes[i, j].imshow(heat, cmap="bwr" if signed else "inferno", alpha=0.6,
                              vmin=-1 if signed else 0, vmax=1)
            if i == 0:
                axes[i, j].set_title(m.replace("_", " "), fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return save_figure(fig, path)


TOP_FEATURES = 8  # bars per chart; the other features are summed into one bar


def _top_with_rest(values: dict[str, float], top: int, absolute: bool) -> tuple[list[str], list[float]]:
    """The ``top`` features by |value| (largest last, for a horizontal bar chart) and one bar
    summing the rest."""
    items = sorted(values.items(), key=lambda kv: abs(kv[1]))
    shown, rest = items[-top:], items[:-top]
    labels, heights = [k for k, _ in shown], [v for _, v in shown]
    if rest:
        labels.insert(0, f"{len(rest)} other features")
        heights.insert(0, sum(abs(v) if absolute else v for _, v in rest))
    return labels, heights


def feature_bars(attrs: dict[str, np.ndarray], names: list[str], titles: list[str], path: Path,
                 top: int = TOP_FEATURES) -> Path:
    """Rows: samples; columns: methods; the top features by |attribution|, with signs, and the
    other features' attributions summed."""
    n, methods = len(titles), list(attrs)
    bars = min(top + 1, len(names))
    fig, axes = plt.subplots(n, len(methods), figsize=(4.2 * len(methods), 0.3 * bars * n + 0.8 * n),
                             squeeze=False)
    for i in range(n):
        for j, m in enumerate(methods):
            labels, heights = _top_with_rest(dict(zip(names, attrs[m][i])), top, absolute=False)
            ax = axes[i, j]
            ax.barh(labels, heights, color=["#c44e52" if v < 0 else "#4c72b0" for v in heights])
            ax.axvline(0, color="grey", lw=0.5)
            ax.set_title(f"{m.replace('_', ' ')}\n{titles[i]}" if j == 0 else m.replace("_", " "))
    fig.tight_layout()
    return save_figure(fig, path)


def global_bars(importance: dict[str, dict[str, float]], path: Path, top: int = TOP_FEATURES) -> Path:
    """Mean |attribution| per feature over the test split, one panel per method."""
    methods = list(importance)
    bars = min(top + 1, max(len(v) for v in importance.values()))
    cols = min(3, len(methods))  # rows of three panels: the picture fits a page at its own size
    rows = -(-len(methods) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.1 * cols, (0.3 * bars + 1) * rows), squeeze=False)
    for ax in axes.flat[len(methods):]:
        ax.axis("off")
    for ax, m in zip(axes.flat, methods):
        labels, heights = _top_with_rest(importance[m], top, absolute=True)
        ax.barh(labels, heights, color="#4c72b0")
        ax.set_title(f"{m.replace('_', ' ')}: mean |attribution|")
    fig.tight_layout()
    return save_figure(fig, path)


def sequence_shading(raw: np.ndarray, attrs: dict[str, np.ndarray], titles: list[str], path: Path) -> Path:
    """Rows: samples; columns: methods; the signal with its attribution as background shading."""
    n, methods = len(raw), list(attrs)
    fig, axes = plt.subplots(n, len(methods), figsize=(3.4 * len(methods), 1.6 * n), squeeze=False)
    for i in range(n):
        signal = raw[i][0]
        t = np.arange(len(signal))
        for j, m in enumerate(methods):
            heat = _norm(attrs[m][i].sum(0))
            ax = axes[i, j]
            lo, hi = signal.min(), signal.max()
            pad = 0.1 * max(hi - lo, 1e-6)
            signed = heat.min() < 0
            ax.imshow(heat[None], aspect="auto", cmap="bwr" if signed else "Oranges", vmin=-1 if signed else 0,
                      vmax=1, extent=(-0.5, len(signal) - 0.5, lo - pad, hi + pad), alpha=0.7)
            ax.plot(t, signal, color="black", lw=1)
            ax.set_yticks([])
            ax.tick_params(labelsize=9)
            ax.set_title(f"{m.replace('_', ' ')} - {titles[i]}" if j == 0 else m.replace("_", " "), fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def token_text(texts: list[list[str]], attrs: dict[str, np.ndarray], titles: list[str], path: Path,
               line_chars: int = 90) -> Path:
    """Each sample's tokens (characters, subwords or words), highlighted by attribution: red
    pushes towards the prediction, blue against. One block per sample and method, wrapped at
    ``line_chars`` characters."""
    methods = list(attrs)
    blocks = []  # (sample, method, [(line, column, token)])
    for i, tokens in enumerate(texts):
        placed, line, col = [], 0, 0
        for tok in tokens:
            w = max(len(tok), 1)
            if col and col + w > line_chars:
                line, col = line + 1, 0
            placed.append((line, col, tok))
            col += w
        blocks += [(i, m, placed) for m in methods]
    height = sum(1 + max((p[0] for p in b[2]), default=0) for b in blocks)
    width = min(line_chars, max((sum(max(len(t), 1) for t in tokens) for tokens in texts), default=1))
    height += 1.3 * len(texts)  # a title line and a gap per sample
    fig, ax = plt.subplots(figsize=(max(6, 0.12 * width + 2.5), 0.3 * height + 0.5))
    ax.set_xlim(0, width + 14)
    ax.set_ylim(height, 0)
    ax.axis("off")
    cmap = plt.get_cmap("bwr")
    top = 0.0
    for i, m, placed in blocks:
        if m == methods[0]:  # the sample's title line
            ax.text(13, top + 0.6, titles[i], fontsize=9)
            top += 0.9
        heat = _norm(np.asarray(attrs[m][i], dtype=np.float64)[: len(placed)])
        ax.text(0, top + 0.6, m[:12], fontsize=9, family="monospace")
        for k, (line, col, tok) in enumerate(placed):
            w = max(len(tok), 1)
            ax.add_patch(plt.Rectangle((13 + col, top + line + 0.1), w, 0.8, color=cmap(0.5 + heat[k] / 2), lw=0))
            ax.text(13 + col + w / 2, top + line + 0.6, tok if tok.strip() else "·", ha="center",
                    fontsize=9, family="monospace")
        top += 1 + max((p[0] for p in placed), default=0) + (0.4 if m == methods[-1] else 0)
    return save_figure(fig, path)
