"""BlazeFace face detector (MediaPipe short or full range) on a TFLite interpreter.

The frame is letterboxed into the square model input (aspect ratio kept, black bars), the
SSD outputs are decoded against the anchors from the manifest, overlapping candidates are
merged by NMS, and boxes and keypoints are mapped back to frame pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.vision.anchors import ssd_anchor_centres
from edge.vision.nms import suppress
from edge.vision.runtime import Manifest, ModelEntry, ModelError, load_interpreter
from edge.vision.types import Face

# MediaPipe clips logits to +-100; 80 keeps exp() inside float32.
_LOGIT_LIMIT = 80.0


class Detector:
    """Find faces in RGB frames of any size.

    score_threshold: minimum confidence in [0, 1] (higher is stricter).
    nms_iou: candidates overlapping more than this are one face.
    weighted_nms: average each cluster (steadier) instead of keeping its best candidate.
    """

    def __init__(
        self,
        manifest: Manifest,
        entry: ModelEntry,
        threads: int = 1,
        score_threshold: float = 0.5,
        nms_iou: float = 0.3,
        weighted_nms: bool = True,
    ) -> None:
        if entry.kind != "detector":
            raise ModelError(f"model '{entry.model_id}' is a {entry.kind}, not a detector")
        self.entry = entry
        self.score_threshold = score_threshold
        self._min_logit = float(np.log(score_threshold / (1.0 - score_threshold)))
        self.nms_iou = nms_iou
        self.weighted_nms = weighted_nms
        self._interpreter = load_interpreter(manifest, entry, threads)
        spec = entry.spec
        self.size = int(spec["input"]["width"])
        if int(spec["input"]["height"]) != self.size:
            raise ModelError(f"detector '{entry.model_id}': only square inputs are supported")
        self._anchors = ssd_anchor_centres(spec["anchors"], self.size, self.size)
        self._input_index = self._interpreter.get_input_details()[0]["index"]
        outputs = {d["name"]: d for d in self._interpreter.get_output_details()}
        self._regressors_index, self._scores_index = self._output_indices(outputs)
        self._canvas = np.zeros((self.size, self.size, 3), np.uint8)
        self._input = np.zeros((1, self.size, self.size, 3), np.float32)
        self._frame_shape: tuple[int, ...] = ()
        self._resized = self._canvas
        self._scale, self._pad_x, self._pad_y = 1.0, 0, 0

    def _output_indices(self, outputs: dict[str, dict]) -> tuple[int, int]:
        """Regressors are the (1, N, 16) output, scores the (1, N, 1) one, whatever their names."""
        by_width = {int(d["shape"][-1]): d for d in outputs.values()}
        try:
            regressors, scores = by_width[16], by_width[1]
        except KeyError:
            raise ModelError(
                f"detector '{self.entry.model_id}' has outputs "
                f"{[list(d['shape']) for d in outputs.values()]}, expected (1,N,16) and (1,N,1)"
            ) from None
        if regressors["shape"][1] != len(self._anchors):
            raise ModelError(
                f"detector '{self.entry.model_id}' predicts {regressors['shape'][1]} boxes but the "
                f"manifest's anchor options give {len(self._anchors)}"
            )
        return regressors["index"], scores["index"]

    def _letterbox(self, frame: np.ndarray) -> None:
        """Fit the frame into the model input, reusing buffers while the frame size stays."""
        if frame.shape != self._frame_shape:
            h, w = frame.shape[:2]
            self._scale = self.size / max(h, w)
            nw, nh = max(1, round(w * self._scale)), max(1, round(h * self._scale))
            self._pad_x, self._pad_y = (self.size - nw) // 2, (self.size - nh) // 2
            self._canvas[:] = 0
            self._resized = np.empty((nh, nw, 3), np.uint8)
            self._frame_shape = frame.shape
        nh, nw = self._resized.shape[:2]
        cv2.resize(frame, (nw, nh), dst=self._resized, interpolation=cv2.INTER_AREA)
        self._canvas[self._pad_y : self._pad_y + nh, self._pad_x : self._pad_x + nw] = self._resized
        np.multiply(self._canvas, 1.0 / 127.5, out=self._input[0], casting="unsafe")
        self._input -= 1.0

    def detect(self, frame: np.ndarray) -> list[Face]:
        """Faces in `frame` ((H, W, 3) uint8 RGB), best score first, in frame pixels."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"detect expects an (H, W, 3) uint8 RGB frame, got {frame.shape} {frame.dtype}")
        self._letterbox(frame)
        self._interpreter.set_tensor(self._input_index, self._input)
        self._interpreter.invoke()
        logits = self._interpreter.get_tensor(self._scores_index)[0, :, 0]
        candidates = np.flatnonzero(logits > self._min_logit)
        if candidates.size == 0:
            return []
        raw = self._interpreter.get_tensor(self._regressors_index)[0, candidates]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[candidates], -_LOGIT_LIMIT, _LOGIT_LIMIT)))
        boxes, points = self._decode(raw, self._anchors[candidates])
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, points, scores = suppress(
            boxes[valid], points[valid], scores[valid].astype(np.float32), self.nms_iou, self.weighted_nms
        )
        h, w = frame.shape[:2]
        np.clip(boxes[:, 0::2], 0, w, out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, h, out=boxes[:, 1::2])
        return [Face(b, p, float(s)) for b, p, s in zip(boxes, points, scores, strict=True)]

    def _decode(self, raw: np.ndarray, anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw regressors (K, 16) in input pixels relative to anchors -> frame pixels.

        Layout per row: centre x, centre y, width, height, then 6 keypoints (x, y).
        """
        size, scale = float(self.size), self._scale
        pad = np.array([self._pad_x, self._pad_y], np.float32)
        centre = raw[:, 0:2] + anchors * size
        half = raw[:, 2:4] / 2.0
        points = raw[:, 4:].reshape(-1, 6, 2) + anchors[:, None, :] * size
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        boxes = (boxes - np.tile(pad, 2)) / scale
        points = (points - pad) / scale
        return boxes.astype(np.float32), points.astype(np.float32)
