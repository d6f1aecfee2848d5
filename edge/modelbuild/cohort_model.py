"""Building a cohort model (`edge.vision.cohort`) from strangers' descriptors, at build time only.

The summary must identify nobody: k-means centroids, each the average of at least `min_members`
people's descriptors (smaller clusters are dissolved into their neighbours), with member counts.
Besides the centroids the file records, per matching mode, how much more often a stranger
matches a person with k templates than a person with one (`multiplicity`): measured here on
cohort identities with at least k usable images, so the device can turn the calibrated
per-comparison FMR into an expected FMR per enrolled person. The `genuine` block holds quantiles
of the cohort's same-person distances, each divided by the scale of the template it is compared
with (`genuine`), so negative feedback can say how often a tightened template misses its person.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from edge.vision.cohort import FORMAT, MODES, raw_scales

KNOBS = np.round(np.arange(30, 81) / 100, 2)  # 0.30 .. 0.80, the calibration curve's grid
MAX_TEMPLATES = 5  # person sizes measured; larger ones are scaled proportionally (edge.vision.cohort)
GENUINE_QUANTILES = 201  # 0%, 0.5%, ..., 100% of the normalized genuine distances
GENUINE_IMAGES = 10  # an identity's first images used, so a few much-photographed people do not dominate
MIN_FALSE_MATCHES = 30  # below this many single-template false matches a ratio is noise: not recorded


def cluster(descriptors: np.ndarray, k: int, min_members: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(centroids (K', 128) float32, counts (K',)) by k-means++, K' <= k with every count >= min_members."""
    if len(descriptors) < k * min_members:
        raise ValueError(f"{len(descriptors)} descriptors cannot fill {k} centroids of {min_members} people")
    cv2.setRNGSeed(seed)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 100, 1e-5)
    data = np.ascontiguousarray(descriptors, np.float32)
    unset = np.zeros((len(data), 1), np.int32)  # filled by k-means++ (no initial labels are used)
    _, labels, centroids = cv2.kmeans(data, k, unset, criteria, 5, cv2.KMEANS_PP_CENTERS)
    while True:
        counts = np.bincount(labels.ravel(), minlength=len(centroids))
        small = int(counts.argmin())
        if counts[small] >= min_members:
            return centroids.astype(np.float32), counts
        centroids = np.delete(centroids, small, axis=0)  # dissolve it: its members join their nearest centroid
        labels = _nearest(data, centroids)
        centroids = np.stack([data[labels == c].mean(axis=0) for c in range(len(centroids))])


def _nearest(data: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    d2 = (data**2).sum(1)[:, None] - 2 * data @ centroids.T + (centroids**2).sum(1)[None, :]
    return d2.argmin(axis=1)


def relative_scales(descriptors: np.ndarray, model: dict[str, Any]) -> np.ndarray:
    """Scales of `descriptors` under a model dict (as `build_model` makes it)."""
    centroids = np.asarray(model["centroids"], np.float32)
    counts = np.asarray(model["counts"], np.int64)
    statistic = model["statistic"]
    return raw_scales(descriptors, centroids, counts, statistic["quantile"]) / statistic["median_scale"]


def multiplicity(descriptors: np.ndarray, identities: np.ndarray, scales: np.ndarray, mode: str) -> dict[str, Any]:
    """For k = 2..MAX_TEMPLATES: F_k(knob) / F_1(knob) on the cohort identities with >= k images.

    F_k is the share of (person, stranger image) comparisons in which the stranger is within the
    threshold of at least one of the person's first k templates.
    """
    factors: list[list[float | None]] = []
    measured: list[int] = []
    data = np.asarray(descriptors, np.float64)
    squares = (data**2).sum(axis=1)
    for k in range(2, MAX_TEMPLATES + 1):
        people = [np.flatnonzero(identities == who)[:k] for who in np.unique(identities)]
        people = [rows for rows in people if len(rows) == k]
        one = np.zeros(len(KNOBS), np.int64)
        many = np.zeros(len(KNOBS), np.int64)
        for rows in people:
            strangers = identities != identities[rows[0]]
            d2 = squares[rows][:, None] - 2.0 * data[rows] @ data[strangers].T + squares[strangers][None, :]
            d = np.sqrt(np.maximum(d2, 0.0))
            if mode == "per_template":
                d = d / scales[rows][:, None]
            one += np.searchsorted(np.sort(d[0]), KNOBS, side="right")
            many += np.searchsorted(np.sort(d.min(axis=0)), KNOBS, side="right")
        factors.append(
            [round(float(m / o), 4) if o >= MIN_FALSE_MATCHES else None for o, m in zip(one, many, strict=True)]
        )
        measured.append(len(people))
    return {"knobs": KNOBS.tolist(), "factor": factors, "people": measured}


def genuine(descriptors: np.ndarray, identities: np.ndarray, scales: np.ndarray) -> dict[str, Any]:
    """Every ordered pair (template i, probe j) of one cohort identity's usable images, i != j: the
    distance divided by template i's scale, summarised as GENUINE_QUANTILES sorted quantiles with the
    pair count (no individual's distance is kept). Identities with one usable image give no pair;
    one with more gives its first GENUINE_IMAGES only (at most 90 pairs)."""
    data = np.asarray(descriptors, np.float64)
    normalized: list[np.ndarray] = []
    order = np.argsort(identities, kind="stable")
    bounds = np.flatnonzero(np.r_[True, identities[order][1:] != identities[order][:-1], True])
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        rows = order[start:stop][:GENUINE_IMAGES]
        if len(rows) < 2:
            continue
        d = np.linalg.norm(data[rows][:, None, :] - data[rows][None, :, :], axis=2) / scales[rows][:, None]
        normalized.append(d[~np.eye(len(rows), dtype=bool)])
    values = np.concatenate(normalized)
    quantiles = np.quantile(values, np.linspace(0.0, 1.0, GENUINE_QUANTILES))
    return {
        "description": (
            "quantiles (0 to 1 in equal steps) of the distance between two images of one cohort identity, "
            "divided by the scale of the first (the template); every ordered pair of the first "
            f"{GENUINE_IMAGES} images of each identity with 2 or more"
        ),
        "pairs": int(values.size),
        "identities": len(normalized),
        "quantiles": np.round(quantiles, 6).tolist(),
    }


def build_model(
    descriptors: np.ndarray,
    identities: np.ndarray,
    k: int,
    quantile: float,
    min_members: int,
    seed: int,
    embedder: dict[str, str],
) -> dict[str, Any]:
    """The cohort file's content (see `edge.vision.cohort`) from the usable descriptors of the cohort."""
    model = summary(descriptors, k, quantile, min_members, seed, embedder)
    scales = relative_scales(descriptors, model)
    model["multiplicity"] = {m: multiplicity(descriptors, identities, scales, m) for m in MODES}
    model["genuine"] = genuine(descriptors, identities, scales)
    return model


def summary(
    descriptors: np.ndarray, k: int, quantile: float, min_members: int, seed: int, embedder: dict[str, str]
) -> dict[str, Any]:
    """Centroids, counts and the scale statistic: what a template's scale needs (no multiplicity table)."""
    centroids, counts = cluster(descriptors, k, min_members, seed)
    model: dict[str, Any] = {
        "format": FORMAT,
        "embedder": embedder["id"],
        "embedder_sha256": embedder["sha256"],
        "min_members": min_members,
        "statistic": {
            "kind": "centroid quantile",
            "description": (
                f"distance within which {quantile:g} of the cohort lies (k-means centroids weighted by their "
                "member counts, midpoint rule), divided by the cohort's own median of that distance"
            ),
            "k": len(centroids),
            "quantile": quantile,
            "seed": seed,
            "median_scale": 1.0,
        },
        "counts": counts.tolist(),
        "centroids": np.round(centroids.astype(np.float64), 6).tolist(),
    }
    raw = raw_scales(descriptors, np.asarray(model["centroids"], np.float32), counts, quantile)
    model["statistic"]["median_scale"] = round(float(np.median(raw)), 6)
    return model
