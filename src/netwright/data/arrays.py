"""NumPy arrays: an ``.npz`` with inputs and targets, or an ``.npy`` pair."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import DataError
from .info import RawData
from .registry import register_dataset


def load_array_file(path: Path) -> dict[str, np.ndarray] | np.ndarray:
    """Load ``.npy``/``.npz`` without pickle; damaged files fail with one clear line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic[:4] != b"PK\x03\x04" and magic != b"\x93NUMPY":
        raise DataError(f"{path}: not a readable NumPy file (no .npy/.npz header); save with numpy.save/savez")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                return {k: loaded[k] for k in loaded.files}
        return loaded
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise DataError(f"{path}: holds Python objects; save plain numeric arrays (no pickle)") from None
        raise DataError(f"{path}: not a readable NumPy file ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable NumPy file ({e})") from None


MODALITY_BY_NDIM = {2: "tabular", 3: "sequence", 4: "image"}


@register_dataset("npz")
def npz(
    path: Path,
    target_path: Path | None = None,
    x_key: str = "x",
    y_key: str = "y",
    task: Literal["auto", "classification", "regression"] = "auto",
    modality: Literal["auto", "image", "sequence", "tabular"] = "auto",
    class_names: list[str] | None = None,
    pixel_range: tuple[float, float] = (0.0, 255.0),
) -> RawData:
    """NumPy arrays: an .npz holding inputs and targets (and optional x_test/y_test), or an .npy pair.

    Args:
        path: ``.npz`` with arrays ``x_key``/``y_key``, or an ``.npy`` of inputs.
        target_path: ``.npy`` of targets when ``path`` is an ``.npy``.
        x_key: name of the inputs array in the ``.npz`` (``x_key + "_test"`` for a test split).
        y_key: name of the targets array in the ``.npz`` (``y_key + "_test"`` for a test split).
        task: auto -> integer targets are classes, float targets are regression.
        modality: auto -> (N, F) tabular, (N, C, L) sequence, (N, C, H, W) image.
        class_names: names of classes 0..K-1.
        pixel_range: raw value range of images (for reading PNGs at predict time).
    """
    loaded = load_array_file(path)
    test = None
    if isinstance(loaded, dict):
        for key in (x_key, y_key):
            if key not in loaded:
                raise DataError(f"{path}: no array '{key}'; it holds {', '.join(loaded) or 'nothing'}")
        x, y = loaded[x_key], loaded[y_key]
        if f"{x_key}_test" in loaded and f"{y_key}_test" in loaded:
            test = (loaded[f"{x_key}_test"], loaded[f"{y_key}_test"])
    else:
        if target_path is None:
            raise DataError(f"{path}: an .npy holds inputs only; set data.target_path to the .npy of targets")
        x, y = loaded, load_array_file(target_path)
        if isinstance(y, dict):
            raise DataError(f"{target_path}: expected an .npy array of targets, got an .npz")

    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{path}: targets must be one value per example, got shape {y.shape}")
    if len(y) == 0 or len(x) == 0:
        raise DataError(f"{path}: the dataset is empty; it needs at least one example per class")
    if modality == "auto":
        if x.ndim not in MODALITY_BY_NDIM:
            raise DataError(f"{path}: inputs of shape {x.shape} are ambiguous; set data.modality "
                            "(image, sequence or tabular)")
        modality = MODALITY_BY_NDIM[x.ndim]
    want = {"tabular": 2, "sequence": 3, "image": 4}[modality]

    def shape_inputs(a: np.ndarray, where: str) -> np.ndarray:
        if not np.issubdtype(a.dtype, np.number):
            raise DataError(f"{where}: inputs must be numbers, got {a.dtype}")
        if a.ndim == want - 1 and modality != "tabular":
            a = a[:, None]  # add the single channel axis
        if a.ndim != want:
            raise DataError(f"{where}: {modality} inputs need {want} dimensions (N, ...), got shape {a.shape}")
        return a.astype(np.float32)

    x = shape_inputs(x, str(path))
    if task == "auto":
        task = "classification" if np.issubdtype(y.dtype, np.integer) else "regression"
    if task == "classification":
        if not np.issubdtype(y.dtype, np.integer):
            if not np.all(np.isfinite(y)) or not np.all(np.mod(y, 1) == 0):
                raise DataError(f"{path}: classification targets must be integer labels 0..K-1")
            y = y.astype(np.int64)
        if class_names is None:
            top = max(int(y.max()), int(test[1].max()) if test is not None else 0)
            class_names = [str(i) for i in range(top + 1)]
        y = y.astype(np.int64)
    else:
        y = y.astype(np.float32)
    if test is not None:
        tx = shape_inputs(test[0], f"{path} ({x_key}_test)")
        ty = test[1].astype(y.dtype)
        test = (tx, ty, {})

    shape = list(x.shape[1:])
    pre = {"kind": {"tabular": "table", "sequence": "sequence", "image": "image"}[modality], "shape": shape}
    feature_names = None
    if modality == "tabular":
        feature_names = [f"x{i}" for i in range(shape[0])]
        pre["columns"] = [{"name": n, "kind": "numeric"} for n in feature_names]
    if modality == "image":
        pre["range"] = list(pixel_range)
    return RawData(x=x, y=y, task=task, modality=modality, preprocess=pre, class_names=class_names,
                   feature_names=feature_names, test=test, source=str(path))
