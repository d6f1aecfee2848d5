"""BlazeFace face detector (MediaPipe short or full range) on a TFLite interpreter.

The frame is letterboxed into the square model input (aspect ratio kept, black bars), the
SSD outputs are decoded against the anchors from the manifest, overlapping candidates are
merged by NMS, and boxes and keypoints are mapped back to frame pixels.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from edge.vision.anchors import ssd_anchor_centres
from edge.vision.nms import suppress
from edge.vision.runtime import Manifest, ModelEntry, ModelError, load_interpreter
from edge.vision.types import Face

# MediaPipe clips logits to +-100; 80 keeps exp() inside float32.
_LOGIT_LIMIT = 80.0
# Faces smaller than this in the detector's input get keypoints worth refining (see `refine`).
_REFINE_BELOW_PX = 40.0
# Frame sizes whose letterbox buffers are kept: a camera frame (or its tiles) and a refinement crop.
_KEPT_SIZES = 2


class FaceDetector(Protocol):
    """What `Vision` and the loop need of a detector: a `Detector`, or one over tiles
    (`edge.vision.tiling.TiledDetector`) for large camera frames."""

    @property
    def entry(self) -> ModelEntry:
        """The manifest entry of the model that finds the faces."""
        ...

    def detect(self, frame: np.ndarray) -> list[Face]:
        """Faces in `frame` ((H, W, 3) uint8 RGB), best score first, in frame pixels."""
        ...

    def refine(self, frame: np.ndarray, face: Face) -> Face:
        """`face` found again where it is large in the input (see `Detector.refine`), or `face`."""
        ...


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
        # The buffers of the latest frame sizes: a tiled camera frame and a refinement crop
        # alternate, and each switch would otherwise allocate a tile's buffers again.
        self._letterboxes: OrderedDict[tuple[int, ...], _Letterbox] = OrderedDict()

    @classmethod
    def load(
        cls, manifest: Manifest, model_id: str | None = None, threads: int = 1, score_threshold: float = 0.5
    ) -> Detector:
        """The manifest's detector `model_id` (default: the manifest's default detector)."""
        entry = manifest.get(model_id or manifest.default_detector, "detector")
        return cls(manifest, entry, threads=threads, score_threshold=score_threshold)

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

    def _letterbox(self, frame: np.ndarray) -> _Letterbox:
        """`frame` fitted into the model input, in buffers kept for its size (see `_Letterbox`)."""
        box = self._letterboxes.pop(frame.shape, None) or _Letterbox(self.size, frame.shape)
        self._letterboxes[frame.shape] = box
        if len(self._letterboxes) > _KEPT_SIZES:
            self._letterboxes.popitem(last=False)
        box.fill(frame)
        return box

    def detect(self, frame: np.ndarray) -> list[Face]:
        """Faces in `frame` ((H, W, 3) uint8 RGB), best score first, in frame pixels."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"detect expects an (H, W, 3) uint8 RGB frame, got {frame.shape} {frame.dtype}")
        box = self._letterbox(frame)
        self._interpreter.set_tensor(self._input_index, box.input)
        self._interpreter.invoke()
        logits = self._interpreter.get_tensor(self._scores_index)[0, :, 0]
        candidates = np.flatnonzero(logits > self._min_logit)
        if candidates.size == 0:
            return []
        raw = self._interpreter.get_tensor(self._regressors_index)[0, candidates]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[candidates], -_LOGIT_LIMIT, _LOGIT_LIMIT)))
        boxes, points = self._decode(raw, self._anchors[candidates], box.fit)
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, points, scores = suppress(
            boxes[valid], points[valid], scores[valid].astype(np.float32), self.nms_iou, self.weighted_nms
        )
        h, w = frame.shape[:2]
        np.clip(boxes[:, 0::2], 0, w, out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, h, out=boxes[:, 1::2])
        return [Face(b, p, float(s)) for b, p, s in zip(boxes, points, scores, strict=True)]

    def refine(self, frame: np.ndarray, face: Face, scale: float | None = None, context: float = 2.0) -> Face:
        """`face` found again on a square crop `context` times its size around it, when it was
        small in the input of the pass that found it; else, or if not found again, `face`.

        scale: input pixels per frame pixel of that pass (default: one pass over `frame`).
        Why: LFW faces pasted into 1080p and 640x360 frames and found by the full-range
        detector gave descriptors this far (median) from the same faces' descriptors in the
        original photos, coarse -> refined: 16 px in the input 0.27 -> 0.16, 24 px 0.20 ->
        0.15, 32 px 0.17 -> 0.15, 40 px and more 0.15 -> 0.15. So only faces under 40 px are
        refined. The crop's face nearest the original centre is kept, and only if its centre
        lies inside the original box.
        """
        h, w = frame.shape[:2]
        if max(face.width, face.height) * (scale or self.size / max(h, w)) >= _REFINE_BELOW_PX:
            return face
        cx, cy = (face.box[0] + face.box[2]) / 2.0, (face.box[1] + face.box[3]) / 2.0
        half = context * max(face.width, face.height) / 2.0
        x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
        x1, y1 = min(w, int(np.ceil(cx + half))), min(h, int(np.ceil(cy + half)))
        if x1 - x0 < 2 or y1 - y0 < 2:
            return face
        found = self.detect(frame[y0:y1, x0:x1])
        if not found:
            return face
        offset = np.array([x0, y0], np.float32)
        best = min(found, key=lambda f: float(np.sum(((f.box[:2] + f.box[2:]) / 2.0 + offset - (cx, cy)) ** 2)))
        centre = (best.box[:2] + best.box[2:]) / 2.0 + offset
        if not (face.box[0] <= centre[0] <= face.box[2] and face.box[1] <= centre[1] <= face.box[3]):
            return face
        return Face(best.box + np.tile(offset, 2), best.keypoints + offset, best.score)

    def _decode(self, raw: np.ndarray, anchors: np.ndarray, fit: _Fit) -> tuple[np.ndarray, np.ndarray]:
        """Raw regressors (K, 16) in input pixels relative to anchors -> frame pixels.

        Layout per row: centre x, centre y, width, height, then 6 keypoints (x, y).
        """
        size = float(self.size)
        pad = np.array([fit.pad_x, fit.pad_y], np.float32)
        scale = np.array([fit.scale_x, fit.scale_y], np.float32)
        centre = raw[:, 0:2] + anchors * size
        half = raw[:, 2:4] / 2.0
        points = raw[:, 4:].reshape(-1, 6, 2) + anchors[:, None, :] * size
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        boxes = (boxes - np.tile(pad, 2)) / np.tile(scale, 2)
        points = (points - pad) / scale
        return boxes.astype(np.float32), points.astype(np.float32)


def shrink_whole(source: np.ndarray, factor: int, out: np.ndarray, scratch: np.ndarray) -> None:
    """Area-average `source` down by a whole `factor` into `out` (its shape / factor).

    OpenCV vectorises area averaging by a whole factor only for 2x. For an odd factor, a box
    blur read at each block's centre (exact nearest neighbour picks the centre) gives the same
    pixels, bit for bit (`tests/test_detector.py`), in under half the time: 640x360 by 3 0.15
    against 0.39 ms. `scratch` is a `source`-sized buffer for the blur (unused for even factors).
    """
    if factor % 2 == 0:
        cv2.resize(source, out.shape[1::-1], dst=out, interpolation=cv2.INTER_AREA)
        return
    cv2.blur(source, (factor, factor), dst=scratch)
    cv2.resize(scratch, out.shape[1::-1], dst=out, interpolation=cv2.INTER_NEAREST_EXACT)


class _Letterbox:
    """The model input for frames of one size, and the buffers that make it.

    Area averaging by a non-integer factor is OpenCV's slow path (4 ms for a 1080 px square to
    192 px here), so the frame is first shrunk by the largest whole factor (`shrink_whole`, after
    dropping the few right and bottom pixels that do not divide), then by what remains. Up to 1.5x
    that last step is bilinear (each source pixel still weighs in, at a fifth of area averaging's
    time; camera frames and tiles: 1.11-1.13x); above it, area averaging, since bilinear then skips
    pixels (LFW photos into the stills detector, 1.95x: bilinear moved descriptors enough to change
    the held-out miss rate).
    """

    def __init__(self, size: int, shape: tuple[int, ...]) -> None:
        self.fit = fit = _Fit.of(size, shape[1], shape[0])
        self.input = np.full((1, size, size, 3), -1.0, np.float32)  # black bars
        self.resized = self.shrunk = self.scratch = np.empty((fit.height, fit.width, 3), np.uint8)
        if fit.factor > 1:  # see `shrink_whole`: odd factors blur into a frame-sized scratch buffer
            self.shrunk = self.scratch = np.empty((fit.used_h // fit.factor, fit.used_w // fit.factor, 3), np.uint8)
            if fit.factor % 2:
                self.scratch = np.empty((fit.used_h, fit.used_w, 3), np.uint8)
        self.region = self.input[0, fit.pad_y : fit.pad_y + fit.height, fit.pad_x : fit.pad_x + fit.width]

    def fill(self, frame: np.ndarray) -> None:
        """Write the model input for `frame` into `input`."""
        fit, source = self.fit, frame
        if fit.factor > 1:
            shrink_whole(frame[: fit.used_h, : fit.used_w], fit.factor, self.shrunk, self.scratch)
            source = self.shrunk
        cv2.resize(source, (fit.width, fit.height), dst=self.resized, interpolation=fit.last_step)
        np.multiply(self.resized, 1.0 / 127.5, out=self.region, casting="unsafe")
        self.region -= 1.0


@dataclass(frozen=True, slots=True)
class _Fit:
    """Where a frame goes in the square model input.

    factor: the whole-number first shrink (1: none); used_w, used_h: the frame pixels that
    shrink covers (multiples of factor); width, height, pad_x, pad_y: the image inside the
    input; scale_x, scale_y: input pixels per frame pixel.
    """

    factor: int
    used_w: int
    used_h: int
    width: int
    height: int
    pad_x: int
    pad_y: int
    scale_x: float
    scale_y: float
    last_step: int  # OpenCV interpolation for the shrink after the whole factor (see `_Letterbox`)

    @classmethod
    def of(cls, size: int, width: int, height: int) -> _Fit:
        scale = size / max(width, height)
        width_in, height_in = max(1, round(width * scale)), max(1, round(height * scale))
        factor = max(1, min(width // width_in, height // height_in))
        used_w, used_h = width // factor * factor, height // factor * factor
        return cls(
            factor,
            used_w,
            used_h,
            width_in,
            height_in,
            (size - width_in) // 2,
            (size - height_in) // 2,
            width_in / used_w,
            height_in / used_h,
            cv2.INTER_LINEAR if used_w / factor <= 1.5 * width_in else cv2.INTER_AREA,
        )
