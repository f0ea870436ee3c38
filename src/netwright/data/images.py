"""A folder of images with one sub-folder per class."""

from __future__ import annotations

from pathlib import Path

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


@register_dataset("images", modality="image", task="classification")
def images(path: Path, image_size: tuple[int, int] | None = None, grayscale: bool | None = None) -> RawData:
    """A folder of images, one sub-folder per class (``cats/``, ``dogs/``...).

    Args:
        path: the folder.
        image_size: ``[height, width]`` to resize every image to; by default all must share one size.
        grayscale: read as one channel; by default grayscale when every image is.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; expected one sub-folder of images per class")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files = [(c, f) for i, c in enumerate(classes) for f in sorted((root / c).iterdir())
             if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise DataError(f"{root}: no images found; expected one sub-folder per class holding "
                        f"{', '.join(sorted(IMAGE_SUFFIXES))} files")
    used = sorted({c for c, _ in files})
    images = [(c, f, open_image(f)) for c, f in files]
    if grayscale is None:
        grayscale = all(im.mode in ("L", "1", "I", "I;16", "F") for _, _, im in images)
    mode = "L" if grayscale else "RGB"
    if image_size is None:
        w, h = images[0][2].size
        for _, f, im in images:
            if im.size != (w, h):
                raise DataError(f"{f} is {im.size[0]}x{im.size[1]} but {images[0][1].name} is {w}x{h}; "
                                f"set data.image_size: [{h}, {w}] to resize all images")
    else:
        h, w = image_size
    arrays = []
    for _, _, im in images:
        im = im.convert(mode)
        if im.size != (w, h):
            im = im.resize((w, h))
        a = np.asarray(im, dtype=np.float32) / 255.0
        arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    x = np.stack(arrays)
    index = {c: i for i, c in enumerate(used)}
    y = np.array([index[c] for c, _ in files], dtype=np.int64)
    return RawData(
        x=x,
        y=y,
        task="classification",
        modality="image",
        preprocess={"kind": "image", "shape": list(x.shape[1:]), "range": [0.0, 1.0], "resize": image_size is not None},
        class_names=used,
        target_name="class",
        source=str(root),
    )
