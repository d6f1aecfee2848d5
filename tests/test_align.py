"""Alignment: keypoints land on the template, and the chip does not depend on the framing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.vision import CHIP_SIZE, Face, align
from edge.vision.align import ALIGN_KEYPOINTS, TEMPLATE_150, chip_transform, similarity_transform


def test_similarity_transform_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (4, 2))
    angle, scale, shift = np.radians(25), 1.7, np.array([12.0, -30.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rot.T + shift
    m = similarity_transform(src, dst)
    assert np.allclose(m[:, :2], rot, atol=1e-9) and np.allclose(m[:, 2], shift, atol=1e-9)


def test_coincident_points_are_an_error():
    with pytest.raises(ValueError):
        similarity_transform(np.zeros((4, 2)), TEMPLATE_150)


def test_eyes_land_on_the_template(data_dir, stills_vision):
    """On real faces the eye keypoints map to within a few pixels of the template's eyes."""
    for path in [
        "face_recognition/examples/obama.jpg",
        "lfw/Colin_Powell/Colin_Powell_0001.jpg",
        "deepface/img1.jpg",
        "face_recognition/examples/biden.jpg",
    ]:
        frame = cv2.cvtColor(cv2.imread(str(data_dir / path)), cv2.COLOR_BGR2RGB)
        face = stills_vision.detect(frame)[0]
        m = chip_transform(face)
        eyes = face.keypoints[list(ALIGN_KEYPOINTS[:2])]
        mapped = eyes @ m[:, :2].T + m[:, 2]
        assert np.abs(mapped - TEMPLATE_150[:2]).max() < 4.0, path


def test_chip_is_the_same_whatever_the_framing(data_dir, stills_vision):
    """Rotating the photo barely changes the chip (the warp undoes it), far less than another face does."""

    def chip_of(frame):
        return align(frame, stills_vision.detect(frame)[0]).astype(int)[25:125, 25:125]

    frame = cv2.cvtColor(cv2.imread(str(data_dir / "face_recognition/examples/obama.jpg")), cv2.COLOR_BGR2RGB)
    h, w = frame.shape[:2]
    turned = cv2.warpAffine(frame, cv2.getRotationMatrix2D((w / 2, h / 2), 15, 1.0), (w, h))
    other = cv2.cvtColor(cv2.imread(str(data_dir / "face_recognition/examples/biden.jpg")), cv2.COLOR_BGR2RGB)
    same = np.abs(chip_of(frame) - chip_of(turned)).mean()
    different = np.abs(chip_of(frame) - chip_of(other)).mean()
    assert same < 18 and same < different / 2, f"rotated: {same:.1f}, another face: {different:.1f} grey levels"


def test_writes_into_a_given_buffer_and_handles_big_faces():
    """A synthetic face box 4x the chip goes through the shrink path into the caller's buffer."""
    frame = np.random.default_rng(1).integers(0, 255, (1200, 1200, 3), dtype=np.uint8)
    kp = np.array([[400, 450], [800, 450], [600, 700], [600, 900], [300, 500], [900, 500]], np.float32)
    face = Face(np.array([300, 250, 900, 1000], np.float32), kp, 0.9)
    out = np.zeros((CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
    assert align(frame, face, out=out) is out
    assert out.std() > 0
