"""Each image described once, exactly as the device describes a face, and every pair's distance.

`Vision.describe_single(..., gated=True, several="central")` is the device's own path: the
stills detector, the configured quality gate, the aligner and the embedder. An image that gives
no descriptor (unreadable, no face, or refused by the gate) is a failure to acquire: it is
recorded with its reason and every pair touching it gets distance NaN, which the metrics count
as an error (see `edge.central.metrics`), never as a dropped pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.central.dataset import Dataset
from edge.progress import progress
from edge.vision import FaceCountError, ImageError, Vision, distance, load_image

CHUNK = 50_000  # pairs per distance batch: bounds memory on all-against-all sets


@dataclass(frozen=True)
class Scores:
    """Distances of a dataset's pairs (NaN where an image failed) and why images failed.

    A failure reason is its kind, then any detail in parentheses: "no face found",
    "unreadable image (...)", "quality gate: turned away (yaw +0.41, limit 0.35)".
    """

    dataset: Dataset
    distances: np.ndarray
    failures: dict[str, str]

    def split(self, group: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(genuine, impostor) distances of `group`'s pairs, or of all pairs for None."""
        mask = self.dataset.group_mask(group)
        genuine = self.dataset.genuine
        return self.distances[mask & genuine], self.distances[mask & ~genuine]


def describe_images(vision: Vision, dataset: Dataset) -> tuple[np.ndarray, dict[str, str]]:
    """(descriptors with NaN rows for failures, {image: reason}), with a progress bar on a terminal."""
    descriptors = np.full((len(dataset.images), vision.embedder.dim), np.nan, np.float32)
    failures: dict[str, str] = {}
    for i, rel in enumerate(progress(dataset.images, desc="describing", unit="image")):
        try:
            result = vision.describe_single(load_image(dataset.root / rel), rel, gated=True, several="central")
        except FaceCountError:
            failures[rel] = "no face found"
            continue
        except ImageError as e:
            failures[rel] = f"unreadable image ({e})"
            continue
        if result.rejected is not None:
            failures[rel] = f"quality gate: {result.rejected}"
        else:
            descriptors[i] = result.embedding
    return descriptors, failures


def score(vision: Vision, dataset: Dataset) -> Scores:
    """Describe every image once, then measure every pair with the device's `distance`."""
    descriptors, failures = describe_images(vision, dataset)
    distances = np.empty(dataset.a.size, np.float64)
    for start in range(0, dataset.a.size, CHUNK):
        a, b = dataset.a[start : start + CHUNK], dataset.b[start : start + CHUNK]
        distances[start : start + CHUNK] = distance(descriptors[a], descriptors[b])
    return Scores(dataset, distances, failures)
