"""Reading still images into the arrays the vision stages take; every failure an `ImageError`."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


class ImageError(ValueError):
    """An image file cannot be read; the message names the file and why."""


def read_bgr(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 BGR as OpenCV decodes it; greyscale files come back as 3 channels.

    OpenCV raises `cv2.error` for some files (one whose header claims more pixels than
    CV_IO_MAX_IMAGE_PIXELS, 2^30 by default) and returns None for others: both become
    `ImageError`, so callers skip or report one file instead of dying on it.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"cannot read image {path}: no such file")
    try:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error as e:
        why = "larger than OpenCV's pixel limit (CV_IO_MAX_IMAGE_PIXELS)" if "MAX_IMAGE_PIXELS" in str(e) else e.err
        raise ImageError(f"cannot read image {path}: {why}") from None
    if bgr is None:
        raise ImageError(f"cannot read image {path}: not an image OpenCV can decode")
    return bgr


def load_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB from any file OpenCV reads (see `read_bgr`)."""
    return cv2.cvtColor(read_bgr(path), cv2.COLOR_BGR2RGB)
