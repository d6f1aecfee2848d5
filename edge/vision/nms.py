"""Non-maximum suppression for the handful of face candidates one frame yields.

Weighted NMS (MediaPipe's default for BlazeFace) averages each cluster of overlapping
candidates by score, which steadies boxes and keypoints from frame to frame; plain NMS keeps
the best candidate of each cluster.
"""

from __future__ import annotations

import numpy as np


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one (4,) box with (K, 4) boxes, all x1, y1, x2, y2."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def suppress(
    boxes: np.ndarray, points: np.ndarray, scores: np.ndarray, iou_threshold: float, weighted: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge overlapping candidates.

    boxes (K, 4), points (K, P, 2), scores (K,). Returns the kept boxes, points and scores,
    best score first. A candidate overlapping a kept one by more than `iou_threshold` joins
    its cluster.
    """
    order = np.argsort(-scores, kind="stable")
    boxes, points, scores = boxes[order], points[order], scores[order]
    remaining = np.ones(len(scores), dtype=bool)
    kept_boxes, kept_points, kept_scores = [], [], []
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        cluster = remaining & (iou(boxes[i], boxes) > iou_threshold)
        cluster[i] = True
        remaining &= ~cluster
        if weighted:
            w = scores[cluster] / scores[cluster].sum()
            kept_boxes.append(w @ boxes[cluster])
            kept_points.append(np.tensordot(w, points[cluster], axes=1))
        else:
            kept_boxes.append(boxes[i])
            kept_points.append(points[i])
        kept_scores.append(scores[i])
    if not kept_scores:
        return boxes[:0], points[:0], scores[:0]
    return np.stack(kept_boxes), np.stack(kept_points), np.asarray(kept_scores, dtype=np.float32)
