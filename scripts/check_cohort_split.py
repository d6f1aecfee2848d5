#!/usr/bin/env python3
"""Per-template thresholds on people nobody tuned on: a cohort model from half of the cohort's
people, measured on the other half.

    .venv/bin/python scripts/check_cohort_split.py          # ../shared/data/lfw_cohort, about 3 minutes

The cohort's people are split by a hash of their name (crc32, even or odd). The cohort model is
built from the first half exactly as `scripts/build_cohort.py` builds it (same k, quantile and
minimum members); the second half's images are compared all against all, and FNMR is printed for
one global threshold and for per-template thresholds: at the shipped operating points, and at
equal overall FMRs chosen on that half. Images without a descriptor count as misses.
"""

from __future__ import annotations

import argparse
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from build_cohort import DATA, describe  # noqa: E402
from edge.central.evaluation.metrics import false_matches, false_non_matches, threshold_at_fmr  # noqa: E402
from edge.config import Settings, load_settings  # noqa: E402
from edge.device.parts import operating_point, stills_vision  # noqa: E402
from edge.modelbuild.cohort_model import relative_scales, summary  # noqa: E402
from edge.vision import Vision  # noqa: E402

TARGETS = (1e-3, 1e-4, 1e-5)


@dataclass(frozen=True)
class CohortSplit:
    """The cohort's images described by the device's still-image pipeline, and its two halves of
    people: `second` (crc32 of the name is odd) is held out, nobody tuned on them."""

    settings: Settings
    vision: Vision
    identities: np.ndarray
    descriptors: np.ndarray  # NaN rows: no descriptor
    second: np.ndarray
    usable: np.ndarray


def split_cohort(cohort: Path) -> CohortSplit | None:
    """The described, split cohort; None (having said why) when the file is not there."""
    if not cohort.is_file():
        print(f"cohort file not found: {cohort} (see ../shared/data/MANIFEST.md)", file=sys.stderr)
        return None
    settings = load_settings()
    vision = stills_vision(settings)
    dataset, descriptors, _ = describe(vision, cohort, cohort.parent.parent)
    identities = np.asarray(dataset.identities)
    second = np.array([zlib.crc32(who.encode()) % 2 == 1 for who in identities])
    return CohortSplit(settings, vision, identities, descriptors, second, ~np.isnan(descriptors[:, 0]))


def pair_distances(descriptors: np.ndarray, identities: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first image of each pair, genuine mask, distance; NaN where an image has no descriptor)."""
    a, b = np.triu_indices(len(descriptors), 1)
    distances = np.empty(a.size, np.float32)
    for start in range(0, a.size, 1_000_000):
        i, j = a[start : start + 1_000_000], b[start : start + 1_000_000]
        distances[start : start + 1_000_000] = np.linalg.norm(descriptors[i] - descriptors[j], axis=1)
    return a, identities[a] == identities[b], distances


def rates(genuine: np.ndarray, impostor: np.ndarray, threshold: float) -> str:
    fm, compared = false_matches(impostor, threshold)
    missed, pairs = false_non_matches(genuine, threshold)
    return f"FNMR {missed / pairs:.3f} ({missed}/{pairs}), FMR {fm / compared:.2g} ({fm}/{compared})"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cohort", type=Path, default=DATA / "lfw_cohort" / "people.csv")
    p.add_argument("--k", type=int, default=128)
    p.add_argument("--quantile", type=float, default=0.005)
    args = p.parse_args()
    split = split_cohort(args.cohort)
    if split is None:
        return 1
    settings, vision, identities, descriptors = split.settings, split.vision, split.identities, split.descriptors
    second, usable = split.second, split.usable
    embedder = {"id": vision.embedder.model_id, "sha256": vision.embedder.sha256}
    model = summary(descriptors[usable & ~second], args.k, args.quantile, 10, 1, embedder)
    held, names = descriptors[second], identities[second]
    scales = relative_scales(np.nan_to_num(held), model)
    first, genuine, distances = pair_distances(held, names)
    scored = {"global": distances, "per_template": distances / scales[first]}
    print(
        f"model from {int((usable & ~second).sum())} images; measured on {int(second.sum())} images of other "
        f"people: {int(genuine.sum())} genuine and {int((~genuine).sum())} impostor pairs"
    )
    for mode, score in scored.items():
        knob = operating_point(
            settings.model_copy(update={"match": settings.match.model_copy(update={"thresholds": mode})}),
            vision.embedder.entry,
        ).threshold
        print(f"{mode:12s} at the shipped point {knob:.4f}: {rates(score[genuine], score[~genuine], knob)}")
    for target in TARGETS:
        row = []
        for mode, score in scored.items():
            threshold = threshold_at_fmr(score[~genuine], target)
            row.append(f"{mode} {threshold:.4f}: {rates(score[genuine], score[~genuine], threshold)}")
        print(f"overall FMR <= {target:g}: " + " | ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
