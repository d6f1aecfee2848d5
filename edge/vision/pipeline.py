"""Detector, aligner, quality gate and embedder wired in the one order every caller uses.

The device loop, enrollment, `edge verify` and the evaluation tools all go through this, so a
figure measured offline is a figure of the code the device runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.vision.align import CHIP_SIZE, align
from edge.vision.detector import Detector, FaceDetector
from edge.vision.embedder import Embedder
from edge.vision.quality import Quality, QualityGate, measure
from edge.vision.runtime import Manifest
from edge.vision.types import Face


class FaceCountError(ValueError):
    """An image meant to hold exactly one face holds none or several."""


@dataclass(frozen=True, slots=True)
class FaceResult:
    """One face: its quality, why the gate refused it (None if passed) and its descriptor
    (None unless it passed and was embedded)."""

    face: Face
    quality: Quality
    rejected: str | None
    embedding: np.ndarray | None

    def embedded(self) -> np.ndarray:
        """`embedding` where the caller knows there is one (the face passed, or went ungated)."""
        if self.embedding is None:
            raise ValueError(f"the face was not embedded: {self.rejected}")
        return self.embedding


class Vision:
    """Frame in, faces with quality and descriptors out.

    `detector` is the one to use (e.g. a `TiledDetector` for camera frames); without it, a plain
    `Detector` of `detector_id` (default: the manifest's) with `threads` and `score_threshold`.
    """

    def __init__(
        self,
        manifest: Manifest,
        detector_id: str | None = None,
        embedder_id: str | None = None,
        threads: int = 1,
        score_threshold: float = 0.5,
        gate: QualityGate | None = None,
        detector: FaceDetector | None = None,
    ) -> None:
        self.detector: FaceDetector = detector or Detector.load(manifest, detector_id, threads, score_threshold)
        self.embedder = Embedder(
            manifest, manifest.get(embedder_id or manifest.default_embedder, "embedder"), threads=threads
        )
        self.gate = gate or QualityGate()
        self._chip = np.empty((CHIP_SIZE, CHIP_SIZE, 3), np.uint8)

    @property
    def chip(self) -> np.ndarray:
        """The aligned chip of the last `assess`/`describe` call (a reused buffer: copy to keep)."""
        return self._chip

    def detect(self, frame: np.ndarray) -> list[Face]:
        return self.detector.detect(frame)

    def ceiling(self, face: Face) -> Quality | None:
        """The best quality `face` could have whatever its chip, or None when the gate refuses it
        on its box and keypoints alone (too small, low score, turned, tilted): the loop aligns
        only faces that could pass and beat their track's best chip."""
        best = measure(face, None)
        return best if self.gate.reject_reason(best) is None else None

    def assess(self, frame: np.ndarray, face: Face) -> tuple[Quality, str | None]:
        """Align into the shared chip buffer and measure; the chip stays valid until the next call."""
        align(frame, face, out=self._chip)
        quality = measure(face, self._chip)
        return quality, self.gate.reject_reason(quality)

    def refine(self, frame: np.ndarray, face: Face) -> Face:
        """`face` found again where it is large (`FaceDetector.refine`), the chip realigned to it
        if it moved. After `assess` of the same face; what `embed` then describes."""
        refined = self.detector.refine(frame, face)
        if refined is not face:
            align(frame, refined, out=self._chip)
        return refined

    def embed(self) -> np.ndarray:
        """The descriptor of the chip the last `assess` (or `refine`) aligned.

        Apart from `assess` so that the loop embeds only chips better than its track's last, and
        apart from `refine` so that `edge bench` times the two stages apart.
        """
        return self.embedder.embed(self._chip)[0]

    def describe(self, frame: np.ndarray, face: Face, gated: bool = True) -> FaceResult:
        """Quality, gate verdict and, if it passed (or `gated` is False), the descriptor."""
        quality, rejected = self.assess(frame, face)
        embedding = self.embed() if rejected is None or not gated else None
        return FaceResult(face, quality, rejected, embedding)

    def describe_single(self, frame: np.ndarray, label: str, gated: bool = True, several: str = "error") -> FaceResult:
        """The subject's face in a still image (enrollment, verification, evaluation).

        No face is an error. Several faces are an error with several="error" (enrollment must
        be unambiguous); several="central" takes the face nearest the image centre, the
        convention of labeled sets such as LFW where bystanders appear at the edges.
        """
        faces = self.detect(frame)
        if not faces:
            raise FaceCountError(f"no face found in {label}")
        if len(faces) > 1 and several == "error":
            raise FaceCountError(f"{len(faces)} faces found in {label}; expected exactly one")
        return self.describe(frame, central_face(faces, frame.shape), gated=gated)


def central_face(faces: list[Face], shape: tuple[int, ...]) -> Face:
    """The face whose box centre is nearest the centre of a frame of `shape`."""
    cx, cy = shape[1] / 2.0, shape[0] / 2.0
    return min(faces, key=lambda f: ((f.box[0] + f.box[2]) / 2 - cx) ** 2 + ((f.box[1] + f.box[3]) / 2 - cy) ** 2)
