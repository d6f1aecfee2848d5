"""BGR to RGB into a reusable buffer: OpenCV and picamera2's "RGB888" both deliver BGR bytes."""

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
