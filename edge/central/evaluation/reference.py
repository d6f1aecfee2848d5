"""The reference pipeline: face_recognition's recipe on dlib, to measure this project against.

HOG detector upsampled once (`face_recognition.face_locations`' default), dlib's 5-point shape
predictor and its ResNet descriptor (`face_recognition.face_encodings`), with the models of the
`face_recognition_models` package. Needs `pip install 'edge[reference]'` (dlib-bin); imported
only by the tools that compare against it, never by the device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[3]


class ReferenceUnavailable(RuntimeError):
    """dlib or its models are not installed; the message says what to install."""


def dlib_model_dir() -> Path:
    """dlib's models from the installed face_recognition_models package or the build cache."""
    try:
        import face_recognition_models

        return Path(face_recognition_models.__file__).parent / "models"
    except ImportError:
        cached = sorted((REPO / ".cache" / "model-sources").glob("**/face_recognition_models/models"))
        if cached:
            return cached[0]
    raise ReferenceUnavailable(
        "dlib models not found: pip install face-recognition-models, or run scripts/build_models.py"
    )


class DlibReference:
    """The three steps of the recipe, callable one by one so callers can time each.

    Images are (H, W, 3) uint8 RGB, as everywhere in `edge`.
    """

    def __init__(self, upsample: int = 1) -> None:
        try:
            import dlib
        except ImportError:
            raise ReferenceUnavailable("dlib is not installed: pip install 'edge[reference]'") from None
        models = dlib_model_dir()
        self.upsample = upsample
        self.version = str(dlib.__version__)
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        self._encoder = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))

    def detect(self, image: np.ndarray) -> list[Any]:
        """dlib rectangles of the faces HOG finds."""
        return list(self._detector(image, self.upsample))

    def landmarks(self, image: np.ndarray, rect: Any) -> Any:
        """The 5-point shape dlib aligns its chip from."""
        return self._predictor(image, rect)

    def descriptor(self, image: np.ndarray, shape: Any) -> np.ndarray:
        """dlib's 128-d descriptor, float32."""
        return np.array(self._encoder.compute_face_descriptor(image, shape), np.float32)


def rect_box(rect: Any) -> np.ndarray:
    """A dlib rectangle as an (x1, y1, x2, y2) float32 box."""
    return np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], np.float32)
