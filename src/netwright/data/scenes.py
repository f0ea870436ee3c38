"""Object detection scenes composed from Fashion-MNIST items at known boxes.

Each scene is a 64x64 grey-scale canvas holding 1 to 3 garments, each resized to 18-30 pixels
and placed where it overlaps no other by more than a little; the target is the list of
(class, x1, y1, x2, y2) boxes. Training scenes use training images, test scenes test images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .fashion import FASHION_CLASSES, fashion_arrays
from .info import RawData
from .registry import register_dataset

SIZE, MAX_OBJECTS = 64, 3


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def compose(images: np.ndarray, labels: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` scenes (n, 1, 64, 64) float32 in 0..255 and their boxes (n, 3, 5) int64, padded with -1."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    x = np.zeros((n, 1, SIZE, SIZE), dtype=np.float32)
    y = np.full((n, MAX_OBJECTS, 5), -1, dtype=np.int64)
    for i in range(n):
        boxes: list[np.ndarray] = []
        for k in range(int(rng.integers(1, MAX_OBJECTS + 1))):
            j = int(rng.integers(len(images)))
            s = int(rng.integers(18, 31))
            for _ in range(20):  # a place that overlaps the others little
                x1, y1 = int(rng.integers(0, SIZE - s + 1)), int(rng.integers(0, SIZE - s + 1))
                box = np.array([x1, y1, x1 + s, y1 + s])
                if all(iou(box, b) < 0.15 for b in boxes):
                    break
            else:
                continue
            item = np.asarray(Image.fromarray(images[j]).resize((s, s), Image.BILINEAR), dtype=np.float32)
            x[i, 0, y1:y1 + s, x1:x1 + s] = np.maximum(x[i, 0, y1:y1 + s, x1:x1 + s], item)
            y[i, len(boxes)] = [labels[j], *box]
            boxes.append(box)
    return x, y


@register_dataset("fashion_scenes", modality="image", task="detection")
def fashion_scenes(path: Path | None = None, scenes: int = 8000, test_scenes: int = 1000, seed: int = 0) -> RawData:
    """64x64 scenes of 1-3 Fashion-MNIST garments at known boxes, for object detection.

    Args:
        path: folder with the Fashion-MNIST IDX files (default: Debian's dataset-fashion-mnist).
        scenes: training (and validation) scenes, composed from training images.
        test_scenes: test scenes, composed from the test images.
        seed: placement, sizes and choice of garments.
    """
    arrays = fashion_arrays(path)
    x, y = compose(*arrays["train"], scenes, seed)
    xt, yt = compose(*arrays["test"], test_scenes, seed + 1)
    return RawData(x=x, y=y, test=(xt, yt, {}), task="detection", modality="image",
                   preprocess={"kind": "image", "shape": [1, SIZE, SIZE], "range": [0.0, 255.0]},
                   class_names=list(FASHION_CLASSES), target_name="boxes (class, x1, y1, x2, y2)",
                   source=f"{scenes} + {test_scenes} scenes composed from Fashion-MNIST (seed {seed})")
