"""Reading still images into the RGB uint8 arrays the vision stages take."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


class ImageError(ValueError):
    """An image file cannot be read."""


def load_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB from any file OpenCV reads; greyscale files come back as 3 channels."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"cannot read image {path}: no such file")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError(f"cannot read image {path}: not an image OpenCV can decode")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
