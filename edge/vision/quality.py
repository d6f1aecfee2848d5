"""Per-face quality measures and the gate that decides whether a face is worth embedding.

A descriptor from a tiny, blurred or turned face is unreliable in both directions (missed
matches and false ones), so scans and enrollment both go through the same gate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge.vision.types import Face, Keypoint


@dataclass(frozen=True, slots=True)
class Quality:
    """size_px: shorter side of the face box, frame pixels.
    score: detector confidence in [0, 1].
    sharpness: variance of the Laplacian of the chip's grey levels (higher is sharper).
    yaw: nose offset from the eye midpoint along the eye line, in inter-eye distances;
        0 is frontal, about +-0.5 is a half-profile (sign: positive when the nose is
        toward the larger-x eye in the image).
    roll_deg: angle of the eye line from horizontal, degrees.
    """

    size_px: float
    score: float
    sharpness: float
    yaw: float
    roll_deg: float

    def rank(self) -> float:
        """One number to pick the best chip of a track: bigger, sharper, more frontal wins."""
        return min(self.size_px, 160.0) * min(self.sharpness, 400.0) ** 0.5 * (1.0 - min(abs(self.yaw), 1.0))


@dataclass(frozen=True, slots=True)
class QualityGate:
    """Thresholds a face must meet to be embedded; each bound is inclusive."""

    min_size_px: float = 40.0
    min_score: float = 0.6
    min_sharpness: float = 15.0
    max_abs_yaw: float = 0.6
    max_abs_roll_deg: float = 30.0

    def reject_reason(self, q: Quality) -> str | None:
        """None when the face passes, else the first failed rule in words."""
        if q.size_px < self.min_size_px:
            return f"face too small ({q.size_px:.0f} px < {self.min_size_px:.0f} px)"
        if q.score < self.min_score:
            return f"detector score too low ({q.score:.2f} < {self.min_score:.2f})"
        if q.sharpness < self.min_sharpness:
            return f"blurred (sharpness {q.sharpness:.0f} < {self.min_sharpness:.0f})"
        if abs(q.yaw) > self.max_abs_yaw:
            return f"turned away (yaw {q.yaw:+.2f}, limit {self.max_abs_yaw:.2f})"
        if abs(q.roll_deg) > self.max_abs_roll_deg:
            return f"head tilted ({q.roll_deg:+.0f} deg, limit {self.max_abs_roll_deg:.0f})"
        return None


def pose(face: Face) -> tuple[float, float]:
    """(yaw, roll_deg) from the keypoints; see `Quality` for the units."""
    kp = face.keypoints
    right_eye, left_eye, nose = kp[Keypoint.RIGHT_EYE], kp[Keypoint.LEFT_EYE], kp[Keypoint.NOSE_TIP]
    eye_vec = left_eye - right_eye
    eye_dist = float(np.hypot(*eye_vec))
    if eye_dist == 0:
        return math.inf, 0.0
    roll = math.degrees(math.atan2(float(eye_vec[1]), float(eye_vec[0])))
    along = float(np.dot(nose - (right_eye + left_eye) / 2.0, eye_vec)) / (eye_dist * eye_dist)
    return along, roll


def sharpness(chip: np.ndarray) -> float:
    """Variance of the Laplacian over the chip's central face region (grey levels)."""
    centre = chip[30:120, 30:120]
    grey = cv2.cvtColor(centre, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def measure(face: Face, chip: np.ndarray | None) -> Quality:
    """Quality of one face, given its aligned chip from `edge.vision.align.align`.

    Without a chip: the best the face could measure whatever its chip (sharpness unbounded), from
    its box and keypoints alone. A face the gate refuses even so, or whose best rank is below what
    it must beat, is refused or passed over with its chip too, so it need not be aligned.
    """
    yaw, roll = pose(face)
    return Quality(
        size_px=min(face.width, face.height),
        score=face.score,
        sharpness=math.inf if chip is None else sharpness(chip),
        yaw=yaw,
        roll_deg=roll,
    )
