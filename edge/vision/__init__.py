"""Pure compute: frames in, faces, aligned chips, quality and descriptors out.

Imports nothing from gallery, device, link or central. Nothing loads at import time.
"""

from edge.vision.align import CHIP_SIZE, align
from edge.vision.detector import Detector, FaceDetector
from edge.vision.embedder import Embedder, distance
from edge.vision.image import ImageError, load_image
from edge.vision.pipeline import FaceCountError, FaceResult, Vision
from edge.vision.quality import Quality, QualityGate, measure
from edge.vision.runtime import Manifest, ModelEntry, ModelError, load_manifest
from edge.vision.types import Face, Keypoint

__all__ = [
    "CHIP_SIZE",
    "Detector",
    "Embedder",
    "Face",
    "FaceCountError",
    "FaceDetector",
    "FaceResult",
    "ImageError",
    "Keypoint",
    "Manifest",
    "ModelEntry",
    "ModelError",
    "Quality",
    "QualityGate",
    "Vision",
    "align",
    "distance",
    "load_image",
    "load_manifest",
    "measure",
]
