"""A folder of images with one sub-folder per class."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import DataError
from .info import RawData, StreamRequest
from .registry import register_dataset

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def open_image(path: Path):
    """Open an image file with Pillow; unreadable files, and images so large that decoding them
    would exhaust memory (Pillow's decompression-bomb limit), fail with one clear line."""
    with _readable(path):
        from PIL import Image

        with Image.open(path) as im:
            im.load()
            return im.copy()


@contextlib.contextmanager
def _readable(path: Path | str):
    """Pillow's errors on ``path`` as one line (DataError)."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(f"{path}: more than {Image.MAX_IMAGE_PIXELS:,} pixels, too large to decode safely; "
                        "resize it first") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:  # Pillow's verify() raises SyntaxError
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


SKIP_HINT = "data.on_error: skip leaves unreadable images out of training (and counts them)"


def _decode(job: tuple[str, tuple[int, int] | None, str, str, bool]) -> tuple[Any, bool, tuple[int, int]] | str:
    """One file -> (array (C, H, W) in 0..1, whether it was grey, its size), or the error line
    when the file cannot be read (and ``skip`` says to go on)."""
    path, size, fit, mode, skip = job
    try:
        im = open_image(Path(path))
    except DataError as e:
        if skip:
            return str(e)
        raise DataError(f"{e}; {SKIP_HINT}") from None
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
           on_error: Literal["error", "skip"] = "error", stream: bool | Literal["auto"] = "auto",
           fit_rows: int = 5000, sample_rows: int = 2000) -> RawData | StreamRequest:
    """A folder of images, one sub-folder per class (``cats/``, ``dogs/``...).

    Args:
        path: the folder.
        image_size: ``[height, width]`` to size every image to; by default all must share one size.
        grayscale: read as one channel; by default grayscale when every image is.
        fit: how an image of another shape meets image_size: stretch, crop (centre, to the aspect
            ratio first) or pad (scaled to fit inside, black borders); predict sizes inputs the same way.
        workers: processes that decode the images (auto: one per core, at most 8, from 256 files).
        on_error: an unreadable image stops loading with its name (error), or is left out and counted (skip).
        stream: decode the images a block at a time while training, in the workers, instead of all
            before the first step (auto: when they would take more than 1 GiB decoded); blocks are
            kept once decoded while the whole set fits in 512 MiB. A streamed folder's splits are
            random, not stratified.
        fit_rows: training images (the first of a seeded order) whose pixels fit the normalisation of a stream.
        sample_rows: images of each split of a stream held in memory for the stages that read examples.
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
    if stream is True or (stream == "auto" and _decoded_bytes(files, size, grayscale) > STREAM_BYTES):
        return _stream(root, files, size, grayscale, fit, on_error, n, fit_rows, sample_rows)
    decoded = _decode_all(jobs, n) if n > 1 else [_decode(j) for j in jobs]
    kept, used, notes = _sort_out(root, files, decoded, size, lambda d: d[2])
    if grayscale is None and all(grey for _, _, (_, grey, _) in kept):
        x = np.stack([a[:1] for _, _, (a, _, _) in kept])  # grey read as RGB: every channel the same
    else:
        x = np.stack([a for _, _, (a, _, _) in kept])
    index = {c: i for i, c in enumerate(used)}
    y = np.array([index[c] for c, _, _ in kept], dtype=np.int64)
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


def _sort_out(root: Path, files: list[tuple[str, Path]], results: list[Any], size: tuple[int, int] | None,
              wh: Any) -> tuple[list[tuple[str, Path, Any]], list[str], list[str]]:
    """The readable files ``(class, file, result)`` (a result that is a string: the file's error
    line, left out), the classes they hold and the notes on those left out. Without ``size``, every
    image must have the first one's size (``wh``: a result's (width, height))."""
    skipped = [r for r in results if isinstance(r, str)]
    kept = [(c, f, r) for (c, f), r in zip(files, results) if not isinstance(r, str)]
    if not kept:
        raise DataError(f"{root}: none of the {len(files)} images could be read (first: {skipped[0]})")
    if size is None:
        (w, h), first = wh(kept[0][2]), kept[0][1]
        for _, f, r in kept:
            if wh(r) != (w, h):
                raise DataError(f"{f} is {wh(r)[0]}x{wh(r)[1]} but {first.name} is {w}x{h}; set data.image_size: "
                                f"[{h}, {w}] to size all images (data.fit: stretch, crop or pad)")
    notes = [f"{len(skipped)} unreadable image{'s' * (len(skipped) > 1)} left out (first: {skipped[0]})"] \
        if skipped else []
    return kept, sorted({c for c, _, _ in kept}), notes


STREAM_BYTES = 1 << 30  # stream: auto streams a folder whose images would take more than this decoded


def _header(job: tuple[str, bool]) -> tuple[tuple[int, int], bool] | str:
    """One file's size and whether it is grey, from its header (no pixels decoded), or the error
    line when it cannot be read (and ``skip`` says to go on). With ``skip`` the file's structure
    is checked too (Pillow's verify: a truncated file is left out now, not met in training)."""
    from PIL import Image

    path, skip = job
    try:
        with _readable(path):
            png = None if skip else _png_header(path)
            if png is not None:
                return png
            with Image.open(path) as im:
                size, grey = im.size, im.mode in ("L", "1", "I", "I;16", "F")
                if skip:
                    im.verify()
                return size, grey
    except DataError as e:
        if skip:
            return str(e)
        raise DataError(f"{e}; {SKIP_HINT}") from None


def _png_header(path: str) -> tuple[tuple[int, int], bool] | None:
    """A PNG file's size and whether it is grey, from its first 26 bytes (Pillow reads more);
    None for any other file, or a PNG file that does not start as one should."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    from PIL import Image

    w, h = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if not (w and h) or w * h > (Image.MAX_IMAGE_PIXELS or w * h):
        return None  # Pillow says what is wrong
    return (w, h), head[25] == 0  # colour type 0: grey (Pillow's L, 1, I or I;16)


def _headers(jobs: list[tuple[str, bool]], workers: int) -> list[Any]:
    if workers <= 1:
        return [_header(j) for j in jobs]
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(workers) as pool:
        try:
            return list(pool.map(_header, jobs, chunksize=max(1, len(jobs) // (workers * 8))))
        except BrokenProcessPool:
            raise DataError(f"a worker process died (killed, or out of memory) while the headers of the images under "
                            f"{Path(jobs[0][0]).parent.parent} were being read; load again, or with data.workers: 1") from None


def _decoded_bytes(files: list[tuple[str, Path]], size: tuple[int, int] | None, grayscale: bool | None) -> int:
    """About how many bytes the folder's images take decoded, from the first one's header."""
    first = _header((str(files[0][1]), True))
    (w, h), grey = first if not isinstance(first, str) else ((0, 0), False)
    h, w = size if size is not None else (h, w)
    return len(files) * h * w * (1 if grayscale or (grayscale is None and grey) else 3) * 4


def _stream(root: Path, files: list[tuple[str, Path]], size: tuple[int, int] | None,
            grayscale: bool | None, fit: str, on_error: str, workers: int, fit_rows: int,
            sample_rows: int) -> StreamRequest:
    """The folder as a stream: every file's header is read (sizes, grey, unreadable ones), no pixels."""
    import hashlib

    heads = _headers([(str(f), on_error == "skip") for _, f in files], workers)
    kept, used, notes = _sort_out(root, files, heads, size, lambda r: r[0])
    size_hw = size if size is not None else kept[0][2][0][::-1]
    grey = grayscale if grayscale is not None else all(g for _, _, (_, g) in kept)
    index = {c: i for i, c in enumerate(used)}
    digest = hashlib.sha256()
    for c, f, (wh, _) in kept:
        digest.update(f"{c}/{f.name}:{f.stat().st_size}:{wh}".encode())
    shape = (1 if grey else 3, *size_hw)
    options = {"files": [str(f) for _, f, _ in kept], "labels": [index[c] for c, _, _ in kept], "class_names": used,
               "shape": list(shape), "size": size, "fit": fit, "mode": "L" if grayscale else "RGB",
               "target_name": "class", "fingerprint": digest.hexdigest()[:16], "source": str(root),
               "preprocess": {"kind": "image", "shape": list(shape), "range": [0.0, 1.0], "resize": size is not None,
                              "fit": fit, **({"notes": notes} if notes else {})}}
    return StreamRequest(root, None, options, fit_rows, sample_rows, workers)
