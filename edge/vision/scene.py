"""Scene-cut detection: a frame that has little to do with the previous one.

Box overlap cannot tell two people apart across a cut (a camera switched, a stream
reconnected, a slideshow), so the loop ends every track when the whole picture changes.
A 32x32 grey thumbnail is enough to see that, for about 0.1 ms a frame.
"""

from __future__ import annotations

import cv2
import numpy as np

_THUMB = (32, 32)


class SceneCutDetector:
    """`is_cut(frame)` is True when the mean absolute difference of grey thumbnails to the
    previous frame exceeds `threshold` grey levels (0 disables)."""

    def __init__(self, threshold: float = 25.0) -> None:
        self.threshold = threshold
        self._previous = np.zeros(_THUMB[::-1], np.float32)
        self._current = np.zeros(_THUMB[::-1], np.float32)
        self._small = np.zeros(_THUMB[::-1] + (3,), np.uint8)
        self._grey = np.zeros(_THUMB[::-1], np.uint8)
        self._primed = False
        self._frame_shape: tuple[int, ...] = ()
        self._factor = 1
        self._shrunk = self._small

    def _pre_shrunk(self, frame: np.ndarray) -> np.ndarray:
        """The frame sampled every `factor` pixels first (nearest neighbour: only the samples
        are read), then averaged to the thumbnail: each thumbnail cell still averages dozens of
        samples. Reading every pixel cost more than the loop's detector input on small frames
        (area averaging 1080p to 32x32: 6.7 ms in one step, 1.6 ms in two; sampled: docs/pages/performance.md)."""
        if frame.shape != self._frame_shape:
            h, w = frame.shape[:2]
            self._factor = max(1, min(w // _THUMB[0], h // _THUMB[1]) // 2)
            self._shrunk = np.empty((h // self._factor, w // self._factor, 3), np.uint8)
            self._frame_shape = frame.shape
        k = self._factor
        if k == 1:
            return frame
        h, w = self._shrunk.shape[:2]
        cv2.resize(frame[: h * k, : w * k], (w, h), dst=self._shrunk, interpolation=cv2.INTER_NEAREST)
        return self._shrunk

    def is_cut(self, frame: np.ndarray) -> bool:
        cv2.resize(self._pre_shrunk(frame), _THUMB, dst=self._small, interpolation=cv2.INTER_AREA)
        cv2.cvtColor(self._small, cv2.COLOR_RGB2GRAY, dst=self._grey)
        self._current[:] = self._grey
        change = float(cv2.absdiff(self._current, self._previous).mean())
        cut = self._primed and self.threshold > 0 and change > self.threshold
        self._previous, self._current = self._current, self._previous
        self._primed = True
        return cut
