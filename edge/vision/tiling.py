"""Detection over overlapping square tiles, so small faces in large frames stay findable.

BlazeFace sees the whole frame letterboxed into its square input (192 px for full range), so
in a 1920x1080 frame a 75 px face shrinks to 7 px and is mostly missed; a 16:9 frame also
leaves 44% of the input as black bars. `TiledDetector` runs the detector on overlapping squares
of at most `tile_px` side instead (a 1080p frame: two 1080 px squares, each face 1.8 times
larger in the input, no bars) and merges the faces found twice where tiles overlap. Frames
whose long side fits in `tile_px` go through in one pass, unchanged.
"""

from __future__ import annotations

import math

import numpy as np

from edge.vision.detector import Detector
from edge.vision.runtime import ModelEntry
from edge.vision.types import Face

DEFAULT_TILE_PX = 1080
# Tiles overlap by at least this share of their side, so a face up to that size lies
# wholly inside one tile.
_MIN_OVERLAP = 0.2
# Two faces from different tiles are one when this much of the smaller box lies in the other.
_SAME_FACE_COVER = 0.5


def tile_origins(length: int, tile: int, min_overlap: int) -> list[int]:
    """Start offsets of the fewest tiles of `tile` px covering `length` px, spread evenly,
    neighbours overlapping by at least `min_overlap` px."""
    if length <= tile:
        return [0]
    count = math.ceil((length - min_overlap) / (tile - min_overlap))
    step = (length - tile) / (count - 1)
    return [round(i * step) for i in range(count)]


def tile_boxes(height: int, width: int, tile_px: int) -> list[tuple[int, int, int]]:
    """(x, y, side) of the square tiles for a frame; one tile covering it if it fits in `tile_px`."""
    if tile_px <= 0 or max(height, width) <= tile_px:
        return [(0, 0, max(height, width))]
    side = min(tile_px, height, width)
    overlap = round(side * _MIN_OVERLAP)
    return [(x, y, side) for y in tile_origins(height, side, overlap) for x in tile_origins(width, side, overlap)]


class TiledDetector:
    """`Detector.detect` over tiles of at most `tile_px` side (0: never tile); a `FaceDetector`."""

    def __init__(self, detector: Detector, tile_px: int = DEFAULT_TILE_PX) -> None:
        self.detector = detector
        self.tile_px = tile_px

    @property
    def entry(self) -> ModelEntry:
        return self.detector.entry

    def refine(self, frame: np.ndarray, face: Face) -> Face:
        """`Detector.refine`, knowing the scale of the tiles the face was found in."""
        h, w = frame.shape[:2]
        side = tile_boxes(h, w, self.tile_px)[0][2]
        return self.detector.refine(frame, face, self.detector.size / side)

    def detect(self, frame: np.ndarray) -> list[Face]:
        """Faces in `frame` ((H, W, 3) uint8 RGB), best score first, in frame pixels."""
        h, w = frame.shape[:2]
        tiles = tile_boxes(h, w, self.tile_px)
        if len(tiles) == 1:
            return self.detector.detect(frame)
        found: list[tuple[bool, Face]] = []
        for x, y, side in tiles:
            inner = _inner_edges(x, y, side, w, h)
            for face in self.detector.detect(frame[y : y + side, x : x + side]):
                box = face.box + np.array([x, y, x, y], np.float32)
                moved = Face(box, face.keypoints + np.array([x, y], np.float32), face.score)
                found.append((_touches(box, inner), moved))
        return _merge(found)


def _inner_edges(x: int, y: int, side: int, w: int, h: int) -> list[tuple[int, float]]:
    """Tile edges inside the frame, as (box coordinate index, position): a face touching one is cut."""
    edges = [(0, x), (1, y), (2, x + side), (3, y + side)]
    return [(i, pos) for i, pos in edges if 0 < pos < (w if i % 2 == 0 else h)]


def _touches(box: np.ndarray, edges: list[tuple[int, float]]) -> bool:
    return any(abs(float(box[i]) - pos) < 2.0 for i, pos in edges)


def _merge(found: list[tuple[bool, Face]]) -> list[Face]:
    """One face per person: whole faces before faces cut by a tile edge, then by score."""
    found.sort(key=lambda item: (item[0], -item[1].score))
    kept: list[Face] = []
    for _, face in found:
        if not any(_cover(face.box, k.box) > _SAME_FACE_COVER for k in kept):
            kept.append(face)
    kept.sort(key=lambda f: -f.score)
    return kept


def _cover(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection of two boxes over the smaller box's area."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(iw * ih / smaller) if smaller > 0 else 0.0
