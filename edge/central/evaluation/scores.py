"""Each image described once, exactly as the device describes a face, and every pair's distance.

`Vision.describe_single(..., gated=True, several="central")` is the device's own path: the
stills detector, the configured quality gate, the aligner and the embedder. An image that gives
no descriptor (unreadable, no face, or refused by the gate) is a failure to acquire: it is
recorded with its reason and every pair touching it gets distance NaN, which the metrics count
as an error (see `edge.central.evaluation.metrics`), never as a dropped pair.

A pair's score depends on the matching mode (`edge.vision.cohort.MODES`): "global" scores the
raw distance; "per_template" divides it by the cohort scale of the pair's first image (the
enrolled template; the probe is the second), so one knob compared with the score is a threshold
of knob * scale per template, as the device matches. Scores are float32 and computed in chunks:
the cohort all-against-all has ~48 million pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edge.central.evaluation.dataset import Dataset
from edge.errors import OperatorError
from edge.progress import progress
from edge.vision import FaceCountError, ImageError, Vision, distance, load_image
from edge.vision.cohort import MODES, Cohort
from edge.vision.pipeline import FaceResult

CHUNK = 50_000  # pairs per distance batch: bounds memory on all-against-all sets


class ModeUnavailable(OperatorError, ValueError):
    """Per-template scores were asked for without a cohort model to give the scales."""


@dataclass(frozen=True)
class Scores:
    """Scores of a dataset's pairs in one mode (NaN where an image failed) and why images failed.

    `distances` holds the mode's score (the raw distance in mode "global"); `scales` is each
    image's cohort scale (NaN for failures), or None without a cohort model; `descriptors` the
    images' descriptors the scores came from (NaN rows for failures), when `score` measured them
    (simulated watchlists enroll and scan the same ones). A failure reason is
    its kind, then any detail in parentheses: "no face found", "unreadable image (...)",
    "quality gate: turned away (yaw +0.41, limit 0.35)".
    """

    dataset: Dataset
    distances: np.ndarray
    failures: dict[str, str]
    scales: np.ndarray | None = None
    mode: str = "global"
    why_no_scales: str = "no cohort model"
    descriptors: np.ndarray | None = None

    def in_mode(self, mode: str) -> Scores:
        """The same pairs scored in `mode`, from global (raw distance) scores."""
        if mode not in MODES:
            raise ValueError(f"unknown matching mode {mode!r}; known: {', '.join(MODES)}")
        if self.mode != "global":
            raise ValueError("in_mode starts from global scores")
        if mode == "global":
            return self
        if self.scales is None:
            raise ModeUnavailable(f"per_template scores need the embedder's cohort scales: {self.why_no_scales}")
        scored = np.empty_like(self.distances)
        for start in range(0, scored.size, CHUNK):
            end = start + CHUNK
            scored[start:end] = self.distances[start:end] / self.scales[self.dataset.a[start:end]]
        return replace(self, distances=scored, mode=mode)

    def split(self, group: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(genuine, impostor) distances of `group`'s pairs, or of all pairs for None."""
        mask = self.dataset.group_mask(group)
        genuine = self.dataset.genuine
        return self.distances[mask & genuine], self.distances[mask & ~genuine]


def describe_one(vision: Vision, root: Path, rel: str) -> tuple[np.ndarray, FaceResult] | str:
    """The image and its subject's gated description, or why there is none (the failure's words)."""
    try:
        frame = load_image(root / rel)
        result = vision.describe_single(frame, rel, gated=True, several="central")
    except FaceCountError:
        return "no face found"
    except ImageError as e:
        return f"unreadable image ({e})"
    if result.rejected is not None:
        return f"quality gate: {result.rejected}"
    return frame, result


def describe_images(vision: Vision, dataset: Dataset) -> tuple[np.ndarray, dict[str, str]]:
    """(descriptors with NaN rows for failures, {image: reason}), with a progress bar on a terminal."""
    descriptors = np.full((len(dataset.images), vision.embedder.dim), np.nan, np.float32)
    failures: dict[str, str] = {}
    for i, rel in enumerate(progress(dataset.images, desc="describing", unit="image")):
        described = describe_one(vision, dataset.root, rel)
        if isinstance(described, str):
            failures[rel] = described
        else:
            descriptors[i] = described[1].embedded()
    return descriptors, failures


def score(vision: Vision, dataset: Dataset, cohort: Cohort | None = None, why_no_cohort: str = "") -> Scores:
    """Describe every image once, then measure every pair with the device's `distance` (global
    scores; `Scores.in_mode` gives the other mode from the images' cohort scales)."""
    descriptors, failures = describe_images(vision, dataset)
    return scored(dataset, descriptors, failures, cohort, why_no_cohort)


def scored(
    dataset: Dataset,
    descriptors: np.ndarray,
    failures: dict[str, str],
    cohort: Cohort | None = None,
    why_no_cohort: str = "",
) -> Scores:
    """The global scores of `dataset`'s pairs from its images' descriptors (NaN rows: failures),
    already computed: a subset of a described set is scored without describing it again."""
    distances = np.empty(dataset.a.size, np.float32)
    for start in range(0, dataset.a.size, CHUNK):
        a, b = dataset.a[start : start + CHUNK], dataset.b[start : start + CHUNK]
        distances[start : start + CHUNK] = distance(descriptors[a], descriptors[b])
    scales = None
    if cohort is not None:
        described = ~np.isnan(descriptors).any(axis=1)
        scales = np.full(len(descriptors), np.nan, np.float32)
        scales[described] = cohort.scales(descriptors[described])
    why = why_no_cohort or "no cohort model"
    return Scores(dataset, distances, failures, scales, why_no_scales=why, descriptors=descriptors)
