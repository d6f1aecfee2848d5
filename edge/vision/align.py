"""Aligned 150x150 face chips for the embedder, from BlazeFace keypoints.

dlib's descriptor network was trained on chips cut by its 5-point shape predictor with
padding 0.25. The template below is where BlazeFace's eye, nose and mouth keypoints land in
such chips (mean over 64 faces, see shared/notes/models.md), so a least-squares similarity
transform onto it reproduces dlib's framing without dlib.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.vision.types import Face, Keypoint

CHIP_SIZE = 150

# (x, y) in chip pixels for the keypoints in ALIGN_KEYPOINTS, same order.
TEMPLATE_150 = np.array([[45.7, 47.1], [101.9, 46.9], [71.6, 78.0], [72.2, 106.7]], dtype=np.float64)
ALIGN_KEYPOINTS = (Keypoint.RIGHT_EYE, Keypoint.LEFT_EYE, Keypoint.NOSE_TIP, Keypoint.MOUTH)

# Below this source-to-chip scale a bilinear warp skips pixels and aliases: shrink first.
_MIN_WARP_SCALE = 0.5


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares rotation + uniform scale + translation mapping src onto dst (Umeyama 1991).

    src, dst: (N, 2) points, N >= 2. Returns the (2, 3) float64 affine matrix.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    sc, dc = src - mu_s, dst - mu_d
    u, s, vt = np.linalg.svd(dc.T @ sc / len(src))
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0
    rotation = u @ np.diag(d) @ vt
    var_s = (sc**2).sum() / len(src)
    if var_s == 0:
        raise ValueError("alignment keypoints coincide")
    scale = (s * d).sum() / var_s
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mu_d - scale * rotation @ mu_s
    return matrix


def chip_transform(face: Face) -> np.ndarray:
    """The (2, 3) matrix taking frame pixels to chip pixels for this face."""
    return similarity_transform(face.keypoints[list(ALIGN_KEYPOINTS)], TEMPLATE_150)


def align(frame: np.ndarray, face: Face, out: np.ndarray | None = None) -> np.ndarray:
    """Cut the face's aligned (150, 150, 3) uint8 RGB chip from an RGB frame.

    `out`, when given, is a (150, 150, 3) uint8 buffer to write into (no allocation).
    Large faces are shrunk with area averaging before the warp so the chip does not alias.
    """
    matrix = chip_transform(face)
    if out is None:
        out = np.empty((CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
    scale = float(np.hypot(matrix[0, 0], matrix[0, 1]))
    source = frame
    if scale < _MIN_WARP_SCALE:
        source, matrix = _shrunk_source(frame, matrix, scale)
    cv2.warpAffine(
        source,
        matrix,
        (CHIP_SIZE, CHIP_SIZE),
        dst=out,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return out


def _shrunk_source(frame: np.ndarray, matrix: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The frame region the chip covers, shrunk to chip scale, and the matrix adjusted to it."""
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0, 1], [CHIP_SIZE, 0, 1], [0, CHIP_SIZE, 1], [CHIP_SIZE, CHIP_SIZE, 1]], float)
    mapped = corners @ inverse.T
    h, w = frame.shape[:2]
    x0, y0 = np.clip(np.floor(mapped.min(axis=0)) - 2, 0, [w - 1, h - 1]).astype(int)
    x1, y1 = np.clip(np.ceil(mapped.max(axis=0)) + 2, [x0 + 1, y0 + 1], [w, h]).astype(int)
    size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
    small = cv2.resize(frame[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA)
    sx, sy = size[0] / (x1 - x0), size[1] / (y1 - y0)
    adjusted = matrix.copy()
    adjusted[:, 2] += matrix[:, 0] * x0 + matrix[:, 1] * y0
    adjusted[:, 0] /= sx
    adjusted[:, 1] /= sy
    return small, adjusted
