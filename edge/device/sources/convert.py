"""BGR to RGB: OpenCV and picamera2's "RGB888" both deliver BGR bytes, the models take RGB."""

from __future__ import annotations

import cv2
import numpy as np


def bgr_to_rgb(bgr: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Convert (H, W, 3) uint8 BGR to RGB, writing into `out` when its shape and dtype fit.

    One pass that also copies the pixels out of a driver buffer, so the caller may release
    that buffer right after. Returns `out`, or a new array when `out` does not fit.
    """
    if out is not None and out.shape == bgr.shape and out.dtype == np.uint8:
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=out)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def bgr_to_rgb_in_place(image: np.ndarray) -> np.ndarray:
    """Swap the channels of a (H, W, 3) uint8 BGR image the caller owns, in place; returns it.

    OpenCV's channel swap reads each pixel before writing it, so source and destination may be
    one buffer (tests check it against numpy's reversal)."""
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)
