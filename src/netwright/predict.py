"""The ``predict`` stage: raw inputs (CSV, NumPy, image, text) -> predictions.

The run's saved preprocessing (``data.json``) is applied, so inputs are given as they
come: CSV rows with the training column names, pixel values in the data's own range,
a PNG of the trained size, plain text.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data.arrays import load_array_file
from .data.images import IMAGE_SUFFIXES, open_image
from .data.info import DataInfo
from .data.preprocess import encode_array, encode_image, encode_table, encode_text, encode_texts, normalize
from .data.speech import encode_wav
from .data.tabular import read_csv
from .errors import DataError
from .run import Run


def encode_inputs(info: DataInfo, inputs: Any, source: str = "input") -> np.ndarray:
    """Raw inputs -> normalised model inputs ``(N, *input_shape)``.

    ``inputs`` is a file path (``.csv``, ``.npy``, ``.npz``, an image, ``.wav``, ``.txt``), a column
    table ``{name: values}`` (tabular data), a string (text data) or an array.
    """
    pre = info.preprocess
    kind = pre["kind"]
    is_path = isinstance(inputs, os.PathLike) or (isinstance(inputs, str) and (kind != "tokens" or Path(inputs).is_file()))
    if is_path:
        path = Path(inputs)
        source = str(path)
        suffix = path.suffix.lower()
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        if suffix == ".csv":
            inputs = _read_csv_inputs(pre, path)
        elif suffix in (".npy", ".npz"):
            loaded = load_array_file(path)
            if isinstance(loaded, dict):
                if len(loaded) != 1 and "x" not in loaded:
                    raise DataError(f"{path}: holds {', '.join(loaded)}; name the inputs 'x'")
                loaded = loaded.get("x", next(iter(loaded.values())))
            inputs = loaded
        elif suffix in IMAGE_SUFFIXES:
            if kind != "image":
                raise DataError(f"{path}: an image, but this model takes {info.modality} inputs")
            return normalize(pre, encode_image(pre, open_image(path), source))
        elif suffix == ".wav":
            if "audio" not in pre:
                raise DataError(f"{path}: a sound file, but this model was not trained on sound")
            return normalize(pre, encode_wav(pre["audio"], path))
        elif suffix == ".txt" or kind == "tokens":
            inputs = path.read_text(encoding="utf-8", errors="replace")
        else:
            raise DataError(f"{path}: unsupported input file; give .csv, .npy, .npz, an image, .wav or .txt")
    if kind == "tokens":
        if isinstance(inputs, str) and "tokenizer" in pre:  # labelled text: a file holds one text a line
            return encode_texts(pre, [t for t in inputs.splitlines() if t.strip()] if is_path else [inputs], source)
        if isinstance(inputs, str):
            return encode_text(pre, inputs, source)
        ids = np.asarray(inputs)
        if ids.ndim == 1:
            ids = ids[None]
        if not np.issubdtype(ids.dtype, np.integer) or ids.shape[1:] != tuple(pre["shape"]):
            raise DataError(f"{source}: expected integer token ids of shape (N, {pre['shape'][0]})")
        if ids.min() < 0 or ids.max() >= len(info.vocab):
            raise DataError(f"{source}: token ids must be in 0..{len(info.vocab) - 1}")
        return ids.astype(np.int64)
    if isinstance(inputs, dict):
        if kind != "table":
            raise DataError(f"{source}: a column table, but this model takes {info.modality} inputs")
        x = encode_table(pre["columns"], {k: list(np.atleast_1d(v)) for k, v in inputs.items()}, source)
    else:
        x = encode_array(pre, inputs, source)
    return normalize(pre, x)


def _read_csv_inputs(pre: dict[str, Any], path: Path) -> Any:
    """Tabular models read named columns; others read rows of numbers (a header row is skipped)."""
    if pre["kind"] == "table":
        return read_csv(path)
    rows = [line.split(",") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    try:
        float(rows[0][0])
    except (ValueError, IndexError):
        rows = rows[1:]
    try:
        return np.array([[float(v) for v in r] for r in rows], dtype=np.float32)
    except ValueError as e:
        raise DataError(f"{path}: expected rows of numbers ({e})") from None


def predict(run: Run | str | os.PathLike, inputs: Any, batch_size: int = 1024,
            coverage: float | None = None) -> list[dict[str, Any]]:
    """Predictions for raw inputs, one dict per example.

    Classification: ``label``, ``class`` (index) and ``probabilities`` per class name
    (temperature-scaled when the run has ``calibration.json``). Regression: ``prediction`` in the
    target's units. Detection: ``objects``, each with its ``label``, ``score`` and ``box`` (x1, y1,
    x2, y2 in pixels). ``coverage`` (e.g. 0.9): split-conformal ``set`` (class names) or
    ``interval`` ``[lo, hi]`` per example, fitted on the run's validation split.
    """
    return Predictor(run, coverage, batch_size)(inputs)


class Predictor:
    """A run's model, temperature and conformal calibration, loaded once, for many calls on raw
    inputs (``predict`` makes one per call; bulk prediction one per file)."""

    def __init__(self, run: Run | str | os.PathLike, coverage: float | None = None, batch_size: int = 1024):
        run = run if isinstance(run, Run) else Run.open(run)
        if coverage is not None:
            from .conformal import check_coverage

            check_coverage(coverage)
        from .generative import require_supervised

        self.run, self.info, self.batch_size = run, run.info, batch_size
        if self.info.task != "detection":  # a detector's outputs are decoded into boxes below
            require_supervised(run, "predict")
        self.model = run.load_model()
        self.conformal = None
        if coverage is not None:
            from .conformal import run_calibration

            self.conformal = run_calibration(run, self.model, run.load_data(), coverage)
        from .calibrate import temperature

        self.temperature = temperature(run) if self.info.task == "classification" else 1.0

    def __call__(self, inputs: Any, source: str | None = None) -> list[dict[str, Any]]:
        info = self.info
        table = inputs  # the columns as given: a fairness-thresholds run decides by their sensitive ones
        if info.preprocess["kind"] == "table" and isinstance(inputs, (str, os.PathLike)) and \
                Path(inputs).suffix.lower() == ".csv" and Path(inputs).is_file():
            table = read_csv(Path(inputs))
        x = torch.from_numpy(encode_inputs(info, table, source or (str(inputs) if table is not inputs else "input")))
        if len(x) == 0:
            where = f"{inputs}: " if isinstance(inputs, (str, os.PathLike)) else ""
            raise DataError(f"{where}no inputs to predict (an empty file or folder); give at least one example")
        model, n = self.model, self.batch_size
        with torch.no_grad():
            out = torch.cat([model(x[i:i + n]) for i in range(0, len(x), n)])
        if info.task == "detection":
            from .tasks.detection import decode

            return [{"objects": [{"label": info.class_names[int(c)], "score": round(float(sc), 4),
                                  "box": [round(float(v), 1) for v in b]}
                                 for b, sc, c in zip(d["boxes"], d["scores"], d["classes"])]}
                    for d in decode(out, model.stride, model.box_size, threshold=0.3)]
        rows = decode_outputs(info, out, self.temperature, self.conformal)
        if info.task == "classification":
            from .fairness.postprocess import deployed_decisions

            rows = deployed_decisions(self.run, table, out.numpy(), rows)
        return rows


def decode_outputs(info: DataInfo, out: np.ndarray | torch.Tensor, temperature: float = 1.0,
                   conformal: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Model outputs (logits, standardised values) -> one prediction dict per example.

    The one place a classifier's probabilities are made: ``softmax(logits / temperature)``
    (:func:`netwright.calibrate.temperature` gives a run's). ``conformal`` (from
    :func:`netwright.conformal.run_calibration`) adds each example's ``set`` or ``interval``.
    """
    from .calibrate import probabilities

    out = np.asarray(out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else out, np.float64)
    if info.picks_class:  # a classifier, or a policy choosing among actions
        probs = probabilities(out, temperature)
        names = info.class_names
        rows = [
            {"label": names[int(p.argmax())], "class": int(p.argmax()),
             "probabilities": {n: round(float(v), 6) for n, v in zip(names, p)}}
            for p in probs
        ]
        if conformal is not None:  # the sets use the model's own probabilities (see netwright.conformal)
            from .conformal import aps_sets

            for row, keep in zip(rows, aps_sets(probabilities(out), conformal["q"])):
                row["set"] = [n for n, k in zip(names, keep) if k]
        return rows
    rows = [{"prediction": info.unscale(float(v))} for v in out[:, 0]]
    if conformal is not None:
        for row in rows:
            row["interval"] = [row["prediction"] - conformal["q"], row["prediction"] + conformal["q"]]
    return rows
