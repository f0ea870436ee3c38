"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) in its standard IDX files, as Debian's
``dataset-fashion-mnist`` package installs them (or any folder holding the four files)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..errors import DataError
from .info import RawData, StreamRequest
from .registry import register_dataset

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: Path) -> np.ndarray:
    """An IDX array (unsigned bytes), gzipped or not."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DataError(f"{path}: not an IDX file of unsigned bytes")
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path}: holds {body.size} values, its header says {shape}; the file is truncated")
    return body.reshape(shape)


def idx_pair(folder: Path, images: str, labels: str) -> tuple[np.ndarray, np.ndarray]:
    def find(stem: str) -> Path:
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
        raise DataError(f"{folder}: no {stem}[.gz]; install Debian's dataset-fashion-mnist (apt-get install "
                        f"dataset-fashion-mnist, files in {FASHION_DIR}) or set data.path to a folder holding the "
                        "four IDX files from github.com/zalandoresearch/fashion-mnist")

    x, y = read_idx(find(images)), read_idx(find(labels))
    if len(x) != len(y):
        raise DataError(f"{folder}: {len(x)} images but {len(y)} labels in {images} / {labels}")
    return x, y


def fashion_arrays(path: Path | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train": (images (N, 28, 28) uint8, labels), "test": ...}."""
    folder = folder_of(path)
    return {split: idx_pair(folder, *names) for split, names in FILES.items()}


@register_dataset("fashion_mnist", modality="image", task="classification")
def fashion_mnist(path: Path | None = None, subset: int | None = None, labelled: int | None = None,
                  stream: bool = False) -> RawData | StreamRequest:
    """Fashion-MNIST: 70,000 28x28 grey-scale clothing images in 10 classes (60,000 train, the
    published 10,000 test). Read from ``path`` (default: where Debian's dataset-fashion-mnist puts it).

    Args:
        path: folder with train/t10k images and labels in IDX format (.gz or not).
        subset: keep only the first ``subset`` training and ``subset // 6`` test images (quick trials).
        labelled: keep only this many training images, the first ``labelled / 10`` of each class
            (learning from few labels: 600 is 1%), and the whole test set.
        stream: read the images through the streamed pipeline (blocks of a seeded order, decoded
            as they are needed and kept) instead of as one array; the validation split is then
            random, not stratified.
    """
    arrays = fashion_arrays(path)
    (x, y), (xt, yt) = arrays["train"], arrays["test"]
    if subset is not None:
        x, y, xt, yt = x[:subset], y[:subset], xt[: max(1, subset // 6)], yt[: max(1, subset // 6)]
    if labelled is not None:
        per = labelled // len(FASHION_CLASSES)
        if per < 1:
            raise DataError(f"data.labelled: {labelled} is fewer than one image per class; give at least 10")
        keep = np.sort(np.concatenate([np.flatnonzero(y == c)[:per] for c in range(len(FASHION_CLASSES))]))
        x, y = x[keep], y[keep]
    source = f"Fashion-MNIST (Xiao et al. 2017, MIT licence), IDX files from {path or FASHION_DIR} (Debian " \
             "dataset-fashion-mnist)"
    if stream:
        import hashlib

        both = np.concatenate([x, xt])[:, None]
        options = {"x": both, "labels": np.concatenate([y, yt]).astype(np.int64), "test": len(yt),
                   "class_names": list(FASHION_CLASSES), "shape": [1, 28, 28], "target_name": "garment",
                   "fingerprint": hashlib.sha256(both.tobytes()).hexdigest()[:16], "source": source,
                   "preprocess": {"kind": "image", "shape": [1, 28, 28], "range": [0.0, 255.0]}}
        return StreamRequest(folder_of(path), None, options, fit_rows=10_000, sample_rows=2000, workers=1)
    as_float = lambda a: a.astype(np.float32)[:, None]  # noqa: E731  (N, 1, 28, 28), pixel values 0..255
    return RawData(
        x=as_float(x), y=y.astype(np.int64), task="classification", modality="image",
        preprocess={"kind": "image", "shape": [1, 28, 28], "range": [0.0, 255.0]},
        class_names=list(FASHION_CLASSES), target_name="garment",
        test=(as_float(xt), yt.astype(np.int64), {}),
        source=source,
    )


def folder_of(path: Path | None) -> Path:
    return Path(path) if path is not None else FASHION_DIR
