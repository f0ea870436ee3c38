"""Semantic segmentation scenes: the detection scenes of :mod:`netwright.data.scenes`, labelled
per pixel.

The scenes are the very ones ``fashion_scenes`` composes (same generator, same seeds): a 64x64
grey-scale canvas holding 1 to 3 Fashion-MNIST garments. The target is a mask of one class per
pixel: 0 for background, ``class + 1`` for a pixel inside a garment's box whose intensity is
above ``threshold``. Garments overlap little (box IoU under 0.15); where two boxes do overlap,
the later box's class overwrites the earlier one's on the bright pixels of the overlap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .fashion import FASHION_CLASSES, fashion_arrays
from .info import RawData
from .registry import register_dataset
from .scenes import SIZE, compose


def masks_from_boxes(x: np.ndarray, boxes: np.ndarray, threshold: float = 10.0) -> np.ndarray:
    """Scenes (n, 1, H, W) and their boxes (n, M, 5) -> masks (n, H, W) int64.

    0 is background; a pixel inside the box of a garment of class ``c`` whose value is above
    ``threshold`` is ``c + 1``. Boxes are painted in order, so a later box overwrites an
    earlier one where they overlap. Padding boxes (class -1) are skipped.
    """
    n, _, h, w = x.shape
    masks = np.zeros((n, h, w), dtype=np.int64)
    for i, j in zip(*np.nonzero(boxes[..., 0] >= 0)):
        c, x1, y1, x2, y2 = (int(v) for v in boxes[i, j])
        region = masks[i, y1:y2, x1:x2]
        region[x[i, 0, y1:y2, x1:x2] > threshold] = c + 1
    return masks


@register_dataset("fashion_segments", modality="image", task="segmentation")
def fashion_segments(path: Path | None = None, scenes: int = 4000, test_scenes: int = 500, seed: int = 0,
                     threshold: float = 10.0) -> RawData:
    """64x64 scenes of 1-3 Fashion-MNIST garments with a class per pixel, for semantic segmentation.

    The scenes of fashion_scenes (same generator and seeds); the mask is 0 for background and
    class + 1 for a garment's bright pixels inside its box (a later box overwrites an earlier
    one where they overlap).

    Args:
        path: folder with the Fashion-MNIST IDX files (default: Debian's dataset-fashion-mnist).
        scenes: training (and validation) scenes, composed from training images.
        test_scenes: test scenes, composed from the test images.
        seed: placement, sizes and choice of garments (test scenes use seed + 1).
        threshold: pixel value (0..255) above which a pixel inside a garment's box is that garment.
    """
    arrays = fashion_arrays(path)
    x, boxes = compose(*arrays["train"], scenes, seed)
    xt, boxes_t = compose(*arrays["test"], test_scenes, seed + 1)
    return RawData(x=x, y=masks_from_boxes(x, boxes, threshold),
                   test=(xt, masks_from_boxes(xt, boxes_t, threshold), {}), task="segmentation", modality="image",
                   preprocess={"kind": "image", "shape": [1, SIZE, SIZE], "range": [0.0, 255.0]},
                   class_names=["background", *FASHION_CLASSES], target_name="mask (class per pixel)",
                   source=f"{scenes} + {test_scenes} scenes composed from Fashion-MNIST (seed {seed}), "
                          f"masked at pixel value > {threshold:g} inside each garment's box")
