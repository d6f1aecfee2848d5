"""Aligned face chips for calibrating and verifying the embedder, cut by this project's own
detector and aligner so the int8 ranges match what the device will feed the model.

The choice is deterministic, identity-disjoint and stratified by demographic group: within
each `group` of `identities.csv` (identities in order of first appearance) identities
alternate between the calibration half and the held-out verification half. Each half cycles
through the groups identity by identity, then takes images round robin (every identity's
first image, then every second one, ...). Stratifying matters: an activation of the ResNet
runs higher on East and Southeast Asian faces, and a calibration set without them clips it
(cosine to dlib fell to 0.9977 on those faces).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

import numpy as np

from edge.vision.align import align
from edge.vision.detector import Detector
from edge.vision.image import load_image
from edge.vision.pipeline import central_face
from edge.vision.types import Face

log = logging.getLogger(__name__)

SELECTION = (
    "{data} identities.csv, {half} half: identities alternate between calibration and "
    "verification within each group, groups cycled, images round robin; the face nearest the "
    "image centre, found by {detector} and aligned by edge.vision.align"
)


@dataclass(frozen=True)
class LabeledImage:
    path: str  # relative to the data folder
    identity: str
    group: str


@dataclass(frozen=True)
class ChipSet:
    """(N, S, S, 3) uint8 RGB chips (S: the aligner's size) and the image each came from."""

    chips: np.ndarray
    images: tuple[LabeledImage, ...]


def read_identities(identities_csv: Path) -> list[LabeledImage]:
    try:
        with open(identities_csv, newline="") as f:
            return [LabeledImage(row["path"], row["identity"], row["group"]) for row in csv.DictReader(f)]
    except (OSError, KeyError) as e:
        raise ValueError(f"cannot read identities from {identities_csv}: {e!r}") from e


def split_images(images: list[LabeledImage]) -> tuple[list[LabeledImage], list[LabeledImage]]:
    """Images in calibration order and in verification order (see the module docstring)."""
    by_identity: dict[str, list[LabeledImage]] = {}
    for image in images:
        by_identity.setdefault(image.identity, []).append(image)
    by_group: dict[str, list[str]] = {}
    for identity, own in by_identity.items():
        by_group.setdefault(own[0].group, []).append(identity)
    halves: list[list[list[str]]] = [[], []]
    for group in sorted(by_group):
        for half, identities in zip(halves, (by_group[group][0::2], by_group[group][1::2]), strict=True):
            half.append(identities)
    calibration, verification = (
        _round_robin([by_identity[identity] for identity in _round_robin(half)]) for half in halves
    )
    return calibration, verification


def _round_robin(lists: list[list]) -> list:
    return [item for round_ in zip_longest(*lists) for item in round_ if item is not None]


def cut_chips(
    detector: Detector,
    data_dir: Path,
    images: list[LabeledImage],
    count: int,
    aligner: Callable[[np.ndarray, Face], np.ndarray] = align,
) -> ChipSet:
    """Chips from the first `count` images in which the detector finds a face, cut by `aligner`
    (dlib's 150 px chip by default; another embedder's framing, e.g. SFace's 112 px)."""
    chips: list[np.ndarray] = []
    used: list[LabeledImage] = []
    for image in images:
        if len(chips) == count:
            break
        frame = load_image(Path(data_dir) / image.path)
        faces = detector.detect(frame)
        if not faces:
            log.info("  no face in %s, skipped", image.path)
            continue
        chips.append(aligner(frame, central_face(faces, frame.shape)))
        used.append(image)
    if len(chips) < count:
        raise ValueError(
            f"only {len(chips)} of the {count} chips wanted could be cut from {len(images)} images in {data_dir}"
        )
    return ChipSet(np.stack(chips), tuple(used))
