"""Semantic segmentation: a class for every pixel. Per-pixel cross-entropy; mean intersection
over union (mIoU), Dice and pixel accuracy from a confusion matrix summed batch by batch, beside
baselines fitted on the train split (an intensity threshold, a per-pixel logistic regression on
local features); masks decoded into class indices, pixel counts and a palette PNG.

A class's IoU is ``TP / (TP + FP + FN)`` over the pixels of a split and its Dice
``2 TP / (2 TP + FP + FN)``. A class with no pixel in the split's truth and none predicted has
neither (``None`` in ``per_class``) and is left out of the means; a class predicted but absent
from the truth scores 0 and counts. The model and every baseline are scored by this one rule.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import NetwrightError
from .base import OneNetworkTask
from .registry import register_task

if TYPE_CHECKING:
    from ..data.info import DataInfo, Dataset, Split
    from ..run import Run

#: mask colours (R, G, B): background black, then matplotlib's tab10 for the next ten classes
#: (its grey, unreadable over grey-scale scenes, swapped for gold), then greys; decode's PNG and
#: the overlay pictures share them
PALETTE = [(0, 0, 0), (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (255, 215, 0), (188, 189, 34), (23, 190, 207)]
SHOWN = 6  # test scenes in eval/overlays.png


def palette(k: int) -> list[tuple[int, int, int]]:
    """``k`` colours, one per class index."""
    extra = [(g, g, g) for g in np.linspace(60, 230, max(0, k - len(PALETTE))).astype(int).tolist()]
    return (PALETTE + extra)[:k]


def confusion_per_example(pred: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    """Predicted and true masks (B, H, W) -> one confusion matrix per example, flattened (B, K*K):
    entry ``i * K + j`` counts pixels of true class ``i`` predicted as ``j``."""
    b = len(target)
    offset = torch.arange(b, device=target.device)[:, None] * (k * k)
    idx = offset + target.flatten(1).long() * k + pred.flatten(1).long()  # (B, H*W)
    return torch.bincount(idx.flatten(), minlength=b * k * k).reshape(b, k * k)


def mask_scores(cm: np.ndarray) -> dict[str, Any]:
    """A confusion matrix (K, K) (rows true, columns predicted) -> ``iou`` and ``dice`` per class
    (NaN where a class is neither true nor predicted anywhere), their means over the other
    classes (``miou``, ``dice``) and ``pixel_accuracy``."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
    union = tp + fp + fn
    seen = union > 0
    iou = np.divide(tp, union, out=np.full_like(tp, np.nan), where=seen)
    dice = np.divide(2 * tp, tp + union, out=np.full_like(tp, np.nan), where=seen)
    total = cm.sum()
    return {"iou": iou, "dice": dice,
            "miou": float(np.nanmean(iou)) if seen.any() else 0.0,
            "mean_dice": float(np.nanmean(dice)) if seen.any() else 0.0,
            "pixel_accuracy": float(tp.sum() / total) if total else 0.0}


def score_masks(pred: np.ndarray | torch.Tensor, true: np.ndarray | torch.Tensor, k: int) -> np.ndarray:
    """Predicted and true masks of any shape -> the confusion matrix (K, K)."""
    pred, true = torch.as_tensor(np.asarray(pred)).flatten(), torch.as_tensor(np.asarray(true)).flatten()
    return confusion_per_example(pred[None], true[None], k)[0].reshape(k, k).numpy()


def report(cm: np.ndarray, names: list[str], loss: float | None = None) -> dict[str, Any]:
    """``metrics`` and ``per_class`` rows of ``eval.json`` from a confusion matrix."""
    s = mask_scores(cm)
    none = lambda v: None if np.isnan(v) else float(v)  # noqa: E731  (JSON has no NaN)
    metrics = {"miou": s["miou"], "dice": s["mean_dice"], "pixel_accuracy": s["pixel_accuracy"]}
    if loss is not None:
        metrics["loss"] = loss
    return {"metrics": metrics,
            "per_class": [{"class": n, "iou": none(s["iou"][i]), "dice": none(s["dice"][i]),
                           "support_pixels": int(np.asarray(cm)[i].sum())} for i, n in enumerate(names)]}


def raw_pixels(info: DataInfo, x: torch.Tensor) -> np.ndarray:
    """Model inputs (N, 1, H, W), normalised with train statistics -> pixel values (N, H, W) in
    the data's own range."""
    return info.raw(x)[:, 0]


@register_task("segmentation", title="a segmentation model", plural="segmentation models")
class SegmentationTask(OneNetworkTask):
    """One class of ``info.class_names`` (the first: background) for every pixel of an image."""

    default_monitor = "val_miou"
    metric_names = ["loss", "miou", "pixel_accuracy"]
    stages = frozenset({"evaluate", "predict", "export", "report"})
    instead = "'netwright predict {run} scene.png' returns its mask"
    preset = "unet"
    spatial_targets = True
    headline = "miou"

    def logits(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.autocast is None:
            return model(x)
        with self.autocast():
            return model(x).float()

    def loss(self, out: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """Cross-entropy per pixel: logits (B, K, H, W), classes (B, H, W)."""
        smoothing = self.train_spec.label_smoothing if self.train_spec is not None else 0.0
        return F.cross_entropy(out, y, reduction=reduction, label_smoothing=smoothing)

    def objective(self, model: nn.Module, batch: tuple[Any, ...]) -> torch.Tensor:
        return self.loss(self.logits(model, batch[0]), batch[1])

    @torch.no_grad()
    def eval_step(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        """Per example: its confusion matrix (B, K*K) and mean cross-entropy (B,); the logits
        are not kept, so memory stays bounded by the batch."""
        x, y = batch[0], batch[1]
        out = self.logits(model, x)  # (B, K, H, W)
        return {"confusion": confusion_per_example(out.argmax(1), y, self.info.num_classes),
                "loss": F.cross_entropy(out.float(), y, reduction="none").flatten(1).mean(1)}

    def metrics(self, outputs: dict[str, torch.Tensor]) -> dict[str, Any]:
        k = self.info.num_classes
        s = mask_scores(outputs["confusion"].sum(0).reshape(k, k).numpy())
        return {"loss": float(outputs["loss"].double().mean()), "miou": s["miou"],
                "pixel_accuracy": s["pixel_accuracy"]}

    # ---- after training

    def outputs_on(self, model: nn.Module, part: Split, batch_size: int) -> dict[str, torch.Tensor]:
        """:meth:`eval_step` over a split in batches, concatenated."""
        was = model.training
        model.eval()
        parts: dict[str, list[torch.Tensor]] = {}
        for i in range(0, len(part), batch_size):
            for key, v in self.eval_step(model, (part.x[i:i + batch_size], part.y[i:i + batch_size])).items():
                parts.setdefault(key, []).append(v.cpu())
        model.train(was)
        return {key: torch.cat(v) for key, v in parts.items()}

    def evaluate(self, run: Run, split: str = "test", batch_size: int = 1024,
                 coverage: float | None = None) -> dict[str, Any]:
        """Mean IoU, mean Dice, pixel accuracy and cross-entropy per pixel on ``split``, IoU and
        Dice per class, beside the stronger of two baselines fitted on the train split."""
        if split not in ("train", "val", "test"):
            raise NetwrightError(f"split '{split}': choose train, val or test")
        if coverage is not None:
            raise NetwrightError(f"--coverage applies to {self.applies_to('conformal')}; {run.path} is {self.title}")
        data, model = run.load_data(), run.load_model()
        part, info = data.split(split), self.info
        k = info.num_classes
        outputs = self.outputs_on(model, part, min(batch_size, 256))
        cm = outputs["confusion"].sum(0).reshape(k, k).numpy()
        result: dict[str, Any] = {"split": split, "n": len(part), "task": "segmentation",
                                  **report(cm, info.class_names, float(outputs["loss"].double().mean())),
                                  "confusion_matrix": cm.tolist()}
        baselines = [threshold_baseline(info, data.train, part), logistic_baseline(info, data.train, part)]
        best = max(baselines, key=lambda b: b["metrics"]["miou"])
        result["baseline"] = best
        result["other_baselines"] = [b for b in baselines if b is not best]
        with torch.no_grad():  # a few scenes for eval/overlays.png
            shown = part.x[:SHOWN]
            self.shown = (raw_pixels(info, shown), part.y[:SHOWN].numpy(), model(shown).argmax(1).numpy())
        return result

    def plots(self, run: Run, result: dict[str, Any], folder: Path) -> None:
        """``overlays.png``: a few scenes of the split, the true and the predicted masks over them."""
        shown = getattr(self, "shown", None)
        if shown is None:  # plots without the evaluation that made ``result``: predict those scenes again
            part = run.load_data().split(result["split"])
            with torch.no_grad():
                shown = (raw_pixels(self.info, part.x[:SHOWN]), part.y[:SHOWN].numpy(),
                         run.load_model()(part.x[:SHOWN]).argmax(1).numpy())
        overlay_plot(*shown, self.info.class_names, folder / "overlays.png",
                     f"{result['split']}: mean IoU {result['metrics']['miou']:.3f}")

    def prepare(self, run: Run, model: nn.Module, coverage: float | None = None) -> None:
        super().prepare(run, model, coverage)  # refuses --coverage

    def decode(self, outputs: torch.Tensor, inputs: Any = None) -> list[dict[str, Any]]:
        """Per image: ``mask`` (rows of class indices), ``classes`` (pixel count of each class
        present, by name) and ``mask_png`` (the mask as a base64 palette PNG, colours as in
        ``eval/overlays.png``)."""
        names = self.info.class_names
        pred = outputs.argmax(1).cpu().numpy()  # (B, H, W)
        rows = []
        for m in pred:
            counts = np.bincount(m.ravel(), minlength=len(names))
            rows.append({"mask": m.tolist(),
                         "classes": {names[c]: int(n) for c, n in enumerate(counts) if n},
                         "mask_png": mask_png(m, len(names))})
        return rows

    @classmethod
    def example(cls) -> dict[str, Any]:
        return {"data": {"name": "fashion_segments", "scenes": 64, "test_scenes": 16},
                "model": {"name": "unet", "channels": [4, 8]}, "train": {"epochs": 1}}


def mask_png(mask: np.ndarray, k: int) -> str:
    """A mask (H, W) of class indices -> a palette-mode PNG (pixel value = class index), base64."""
    from PIL import Image

    h, w = mask.shape
    image = Image.frombytes("P", (w, h), np.ascontiguousarray(mask, dtype=np.uint8).tobytes())
    image.putpalette([v for rgb in palette(k) for v in rgb])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


# ---- baselines (fitted on the train split, scored on the evaluated one by the same rule)

LOCAL = (3, 7, 15)  # neighbourhood sizes of the logistic regression's features
#: train images the threshold is fitted on, at most (a seeded sample); the regression takes a quarter of them
FIT_IMAGES = 1000
#: pixels of those the logistic regression is fitted on, a seeded sample (60,000: +0.002 mIoU, twice the time)
FIT_PIXELS = 20_000


def train_sample(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Indices of a seeded sample of ``size`` of ``n`` train images (all when ``n <= size``), sorted."""
    if n <= size:
        return torch.arange(n)
    return torch.from_numpy(np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False)))


def threshold_baseline(info: DataInfo, train: Split, part: Split) -> dict[str, Any]:
    """Pixels brighter than a threshold are the commonest garment, the rest background.

    The threshold is the one of 256 levels over the train pixels' range that classifies train
    pixels as foreground (any class but the first) or background most accurately. Its
    probabilities, for the loss, are the train class shares on each side of the threshold.
    """
    k, names = info.num_classes, info.class_names
    images = train_sample(len(train), FIT_IMAGES)
    raw, y = raw_pixels(info, train.x[images]).ravel(), train.y[images].numpy().ravel()
    edges = np.linspace(raw.min(), raw.max(), 257)
    fg = y > 0
    bins = np.clip(np.searchsorted(edges, raw, side="right") - 1, 0, 255)
    h_fg, h_bg = np.bincount(bins[fg], minlength=256), np.bincount(bins[~fg], minlength=256)
    # pixels of bin >= b are foreground: right = background below b + foreground from b up
    right = np.concatenate([[0], np.cumsum(h_bg)]) + np.concatenate([np.cumsum(h_fg[::-1])[::-1], [0]])
    cut = int(np.argmax(right[1:])) + 1  # at least the lowest bin is background
    t = float(edges[cut])
    above = raw >= t
    shares = [np.bincount(y[side], minlength=k) / max(1, int(side.sum())) for side in (~above, above)]
    garment = int(np.argmax(np.bincount(y[fg], minlength=k)[1:])) + 1
    probs = np.stack(shares).clip(1e-15)
    probs /= probs.sum(1, keepdims=True)
    praw, ptrue = raw_pixels(info, part.x), part.y.numpy()
    side = (praw >= t).astype(np.int64)
    pred = np.where(side == 1, garment, 0)
    loss = float(-np.log(probs[side.ravel(), ptrue.ravel()]).mean())
    scored = report(score_masks(pred, ptrue, k), names, loss)
    lo, hi = info.preprocess.get("range", [0.0, 255.0])
    return {"name": "intensity threshold", "fitted_on": "train",
            "detail": f"pixels of value >= {t:.4g} (of {lo:g}..{hi:g}) are '{names[garment]}', the commonest "
                      f"garment of the train pixels; the rest '{names[0]}'",
            "metrics": scored["metrics"], "per_class_iou": {r["class"]: r["iou"] for r in scored["per_class"]}}


def local_features(info: DataInfo, x: torch.Tensor) -> np.ndarray:
    """Per pixel: its value, the mean of its 3x3, 7x7 and 15x15 neighbourhoods, the 7x7
    maximum and standard deviation (inputs scaled to 0..1) -> (N * H * W, 6)."""
    lo, hi = info.preprocess.get("range", [0.0, 255.0])
    v = torch.from_numpy((raw_pixels(info, x) - lo) / (hi - lo)).float()[:, None]  # (N, 1, H, W)
    mean = lambda s, t: F.avg_pool2d(t, s, 1, s // 2, count_include_pad=False)  # noqa: E731
    feats = [v] + [mean(s, v) for s in LOCAL]
    feats += [F.max_pool2d(v, 7, 1, 3), (mean(7, v * v) - mean(7, v) ** 2).clamp(min=0).sqrt()]
    return torch.cat(feats, 1).permute(0, 2, 3, 1).reshape(-1, len(feats)).numpy()  # (N*H*W, F)


def logistic_baseline(info: DataInfo, train: Split, part: Split, seed: int = 0) -> dict[str, Any]:
    """Multinomial logistic regression (scikit-learn) of each pixel's class on local features
    (:func:`local_features`), fitted on a seeded sample of train pixels."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    k, names = info.num_classes, info.class_names
    rng = np.random.default_rng(seed)
    images = train_sample(len(train), FIT_IMAGES // 4, seed)
    feats, y = local_features(info, train.x[images]), train.y[images].numpy().ravel()
    pick = rng.choice(len(y), size=min(len(y), FIT_PIXELS), replace=False)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))
    with warnings.catch_warnings():  # a fit that stops at max_iter is still a baseline
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(feats[pick], y[pick])
    cm, nll, n = np.zeros((k, k), dtype=np.int64), 0.0, 0
    for i in range(0, len(part), 128):
        f, t = local_features(info, part.x[i:i + 128]), part.y[i:i + 128].numpy().ravel()
        p = np.full((len(t), k), 1e-15)
        p[:, clf.classes_] = np.clip(clf.predict_proba(f), 1e-15, None)
        p /= p.sum(1, keepdims=True)
        cm += score_masks(p.argmax(1), t, k)
        nll, n = nll - np.log(p[np.arange(len(t)), t]).sum(), n + len(t)
    scored = report(cm, names, float(nll / n))
    return {"name": "logistic regression on local features", "fitted_on": "train",
            "detail": f"multinomial logistic regression (scikit-learn) of each pixel's class on its value, the "
                      f"mean of its {', '.join(f'{s}x{s}' for s in LOCAL)} neighbourhoods and the 7x7 maximum and "
                      f"standard deviation; fitted on {len(pick)} pixels of {len(images)} train images",
            "metrics": scored["metrics"], "per_class_iou": {r["class"]: r["iou"] for r in scored["per_class"]}}


def overlay_plot(scenes: np.ndarray, true: np.ndarray, pred: np.ndarray, names: list[str], path: Path,
                 title: str) -> Path:
    """Scenes (N, H, W) in grey with the true (middle row) and predicted (bottom row) masks in colour."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from ..plots import save_figure

    k, n = len(names), len(scenes)
    colours = np.array(palette(k)) / 255.0
    cmap = ListedColormap(colours)
    fig, axes = plt.subplots(3, n, figsize=(1.6 * n + 0.4, 5.4), squeeze=False)
    for j in range(n):
        right = float((true[j] == pred[j]).mean())
        for row, mask in enumerate((None, true[j], pred[j])):
            ax = axes[row, j]
            ax.imshow(scenes[j], cmap="gray", vmin=0, vmax=max(1.0, float(scenes.max())))
            if mask is not None:
                ax.imshow(np.ma.masked_equal(mask, 0), cmap=cmap, vmin=-0.5, vmax=k - 0.5, alpha=0.6,
                          interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[2, j].set_xlabel(f"{right:.0%} right", fontsize=9)
    for row, label in enumerate(("scene", "true", "predicted")):
        axes[row, 0].set_ylabel(label, fontsize=10)
    present = sorted((set(np.unique(true).tolist()) | set(np.unique(pred).tolist())) - {0})
    fig.legend(handles=[Patch(color=colours[c], label=names[c]) for c in present], loc="lower center",
               ncol=min(5, max(1, len(present))), fontsize=9, frameon=False, bbox_to_anchor=(0.5, -0.06))
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)
