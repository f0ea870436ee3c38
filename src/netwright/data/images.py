"""A folder of images with one sub-folder per class."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import DataError
from .info import RawData
from .registry import register_dataset

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def open_image(path: Path):
    """Open an image file with Pillow; unreadable files, and images so large that decoding them
    would exhaust memory (Pillow's decompression-bomb limit), fail with one clear line."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                return im.copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(f"{path}: more than {Image.MAX_IMAGE_PIXELS:,} pixels, too large to decode safely; "
                        "resize it first") from None
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path}: cannot read this image ({e.__class__.__name__}); is the file complete?") from None


Fit = Literal["stretch", "crop", "pad"]


def fit_image(image: Any, h: int, w: int, fit: str = "stretch") -> Any:
    """``image`` at ``w`` x ``h``: stretched, centre-cropped to the aspect ratio first (``crop``),
    or scaled to fit inside and padded with black (``pad``). The one place an image is sized, for
    training and for every later input."""
    from PIL import Image

    if image.size == (w, h):
        return image
    if fit == "crop":
        iw, ih = image.size
        scale = max(w / iw, h / ih)
        cw, ch = round(w / scale), round(h / scale)
        left, top = (iw - cw) // 2, (ih - ch) // 2
        return image.resize((w, h), box=(left, top, left + cw, top + ch))
    if fit == "pad":
        iw, ih = image.size
        scale = min(w / iw, h / ih)
        inner = image.resize((max(1, round(iw * scale)), max(1, round(ih * scale))))
        canvas = Image.new(image.mode, (w, h))
        canvas.paste(inner, ((w - inner.size[0]) // 2, (h - inner.size[1]) // 2))
        return canvas
    return image.resize((w, h))


def _decode(job: tuple[str, tuple[int, int] | None, str, str, bool]) -> tuple[Any, bool, tuple[int, int]] | str:
    """One file -> (array (C, H, W) in 0..1, whether it was grey, its size), or the error line
    when the file cannot be read (and ``skip`` says to go on)."""
    path, size, fit, mode, skip = job
    try:
        im = open_image(Path(path))
    except DataError as e:
        if skip:
            return str(e)
        raise
    grey = im.mode in ("L", "1", "I", "I;16", "F")
    original = im.size
    im = im.convert(mode)
    if size is not None:
        im = fit_image(im, size[0], size[1], fit)
    a = np.asarray(im, dtype=np.float32) / 255.0
    # one memory layout whichever process decoded it: the normalisation's float sums then agree to the bit
    return np.ascontiguousarray(a[None] if a.ndim == 2 else a.transpose(2, 0, 1)), grey, original


def _decode_all(jobs: list[tuple], workers: int) -> list[Any]:
    """``_decode`` over the files in ``workers`` processes, in order; a worker that dies (killed,
    out of memory) ends loading with one line naming the first file not yet decoded."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    size = max(1, len(jobs) // (workers * 8))
    chunks = [jobs[i:i + size] for i in range(0, len(jobs), size)]
    with ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(_decode_chunk, c) for c in chunks]
        out: list[Any] = []
        for chunk, future in zip(chunks, futures):
            try:
                out += future.result()
            except BrokenProcessPool:
                raise DataError(f"a worker process died (killed, or out of memory) while the images from {chunk[0][0]} "
                                "on were being decoded; load again, or with data.workers: 1") from None
    return out


def _decode_chunk(chunk: list[tuple]) -> list[Any]:
    return [_decode(j) for j in chunk]


def _workers(workers: int | str, files: int) -> int:
    if workers != "auto":
        return int(workers)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(cores, 8) if files >= 256 else 1  # processes pay off past a few hundred files


@register_dataset("images", modality="image", task="classification")
def images(path: Path, image_size: tuple[int, int] | None = None, grayscale: bool | None = None,
           fit: Fit = "stretch", workers: int | Literal["auto"] = "auto",
           on_error: Literal["error", "skip"] = "error") -> RawData:
    """A folder of images, one sub-folder per class (``cats/``, ``dogs/``...).

    Args:
        path: the folder.
        image_size: ``[height, width]`` to size every image to; by default all must share one size.
        grayscale: read as one channel; by default grayscale when every image is.
        fit: how an image of another shape meets image_size: stretch, crop (centre, to the aspect
            ratio first) or pad (scaled to fit inside, black borders); predict sizes inputs the same way.
        workers: processes that decode the images (auto: one per core, at most 8, from 256 files).
        on_error: an unreadable image stops loading with its name (error), or is left out and counted (skip).
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; expected one sub-folder of images per class")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files = [(c, f) for c in classes for f in sorted((root / c).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise DataError(f"{root}: no images found; expected one sub-folder per class holding "
                        f"{', '.join(sorted(IMAGE_SUFFIXES))} files")
    size = tuple(image_size) if image_size is not None else None
    mode = "L" if grayscale else "RGB"  # grayscale unknown: read RGB, keep one channel if every image was grey
    jobs = [(str(f), size, fit, mode, on_error == "skip") for _, f in files]
    n = _workers(workers, len(jobs))
    decoded = _decode_all(jobs, n) if n > 1 else [_decode(j) for j in jobs]
    skipped = [d for d in decoded if isinstance(d, str)]
    kept = [(c, f, d) for (c, f), d in zip(files, decoded) if not isinstance(d, str)]
    if not kept:
        raise DataError(f"{root}: none of the {len(files)} images could be read (first: {skipped[0]})")
    if size is None:
        first_c, first_f, (_, _, (w, h)) = kept[0]
        for _, f, (_, _, wh) in kept:
            if wh != (w, h):
                raise DataError(f"{f} is {wh[0]}x{wh[1]} but {first_f.name} is {w}x{h}; set data.image_size: "
                                f"[{h}, {w}] to size all images (data.fit: stretch, crop or pad)")
    if grayscale is None and all(grey for _, _, (_, grey, _) in kept):
        x = np.stack([a[:1] for _, _, (a, _, _) in kept])  # grey read as RGB: every channel the same
    else:
        x = np.stack([a for _, _, (a, _, _) in kept])
    used = sorted({c for c, _, _ in kept})
    index = {c: i for i, c in enumerate(used)}
    y = np.array([index[c] for c, _, _ in kept], dtype=np.int64)
    notes = [f"{len(skipped)} unreadable image{'s' * (len(skipped) > 1)} left out (first: {skipped[0]})"] \
        if skipped else []
    return RawData(
        x=x,
        y=y,
        task="classification",
        modality="image",
        preprocess={"kind": "image", "shape": list(x.shape[1:]), "range": [0.0, 1.0], "resize": size is not None,
                    "fit": fit, **({"notes": notes} if notes else {})},
        class_names=used,
        target_name="class",
        source=str(root),
    )
