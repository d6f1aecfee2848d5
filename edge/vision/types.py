"""Plain data passed between the vision stages.

Conventions used everywhere in `edge`:
- frames are numpy arrays of shape (H, W, 3), dtype uint8, RGB order;
- boxes are pixels in frame coordinates, (x1, y1, x2, y2), float32;
- keypoints are pixels (x, y) in MediaPipe's order (see `Keypoint`), named from the
  subject's point of view: in an unmirrored image the subject's right eye has the smaller x.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class Keypoint(IntEnum):
    """Row index of each BlazeFace keypoint in `Face.keypoints`."""

    RIGHT_EYE = 0
    LEFT_EYE = 1
    NOSE_TIP = 2
    MOUTH = 3
    RIGHT_EAR = 4
    LEFT_EAR = 5


@dataclass(frozen=True, slots=True)
class Face:
    """One detected face.

    box: (4,) float32, x1, y1, x2, y2 in frame pixels.
    keypoints: (6, 2) float32, x, y in frame pixels, rows ordered as `Keypoint`.
    score: detector confidence in [0, 1].
    """

    box: np.ndarray
    keypoints: np.ndarray
    score: float

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])
