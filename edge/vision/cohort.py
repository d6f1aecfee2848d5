"""How crowded the descriptor space is around a face, from a cohort of strangers: each template's own scale.

One global threshold is set by the most crowded region of the descriptor space (under the dlib
embedder, East Asian faces sit closer together than others) and is needlessly strict everywhere
else. The cohort model summarises thousands of strangers' descriptors as k-means centroids with
their member counts: an average of at least `min_members` people each, so it identifies nobody
and holds no individual's descriptor. A template's *scale* is the distance within which a small
share (`quantile`) of the cohort lies, read off the centroids weighted by their counts, divided by
the median scale of the cohort itself: 1.0 is typically crowded, below 1 more crowded (a stricter
threshold), above 1 less. The device then matches a probe against template i when

    distance(probe, template i) <= knob * scale_i

with one knob calibrated as before (`edge calibrate`). No group label is used at run time.

The file also carries, per matching mode, how much more often a stranger matches a person with k
templates than a person with one (`person_factor`), measured on the same cohort at build time
(`scripts/build_cohort.py`): a person's expected false match rate is the calibrated rate times it.

Negative feedback prices a tightened threshold's cost from the `genuine` block (quantiles of the
cohort's same-person distances, each divided by the scale of the template it is compared with):
the share of a person's own faces beyond a normalized threshold (`genuine_miss`; None for a file
made before the block existed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.vision.runtime import Manifest, ModelError, verify_model_file

FORMAT = "edge.cohort/1"
MODES = ("per_template", "global")


@dataclass(frozen=True)
class Cohort:
    """A cohort model of one embedder (see the module docstring); load it with `Cohort.load`."""

    model_id: str
    sha256: str
    embedder_id: str
    centroids: np.ndarray  # (K, 128) float32
    counts: np.ndarray  # (K,) members per centroid
    quantile: float
    median_scale: float
    multiplicity: dict[str, Any] = field(repr=False)
    genuine: np.ndarray | None = field(default=None, repr=False)  # sorted normalized genuine distances
    genuine_pairs: int = 0

    @classmethod
    def load(cls, manifest: Manifest, embedder_id: str) -> Cohort:
        """The cohort model the embedder's manifest record names (`"cohort": "<model id>"`), sha256 checked."""
        embedder = manifest.get(embedder_id, "embedder")
        cohort_id = embedder.spec.get("cohort")
        if not cohort_id:
            raise ModelError(
                f"embedder '{embedder_id}' has no cohort model in {manifest.directory}: "
                "build one with scripts/build_cohort.py"
            )
        entry = manifest.get(cohort_id, "cohort")
        path = verify_model_file(manifest, entry)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls.from_json(raw, cohort_id, entry.sha256, embedder_id, embedder.sha256)
        except (ValueError, KeyError, TypeError) as e:
            raise ModelError(f"cohort model {path} is malformed: {e}") from None

    @classmethod
    def from_json(
        cls, raw: dict[str, Any], model_id: str, sha256: str, embedder_id: str, embedder_sha256: str
    ) -> Cohort:
        """The model in a cohort file's JSON; ValueError names what is wrong. Scales describe one
        embedder file's descriptors: a cohort made from another file's (a rebuilt embedder) is refused."""
        if raw.get("format") != FORMAT:
            raise ValueError(f"format {raw.get('format')!r}, expected {FORMAT!r}")
        if (raw["embedder"], raw["embedder_sha256"]) != (embedder_id, embedder_sha256):
            raise ValueError(
                f"made for embedder {raw['embedder']!r} (sha256 {str(raw['embedder_sha256'])[:12]}), not "
                f"{embedder_id!r} (sha256 {embedder_sha256[:12]}): rebuild it with scripts/build_cohort.py"
            )
        centroids = np.asarray(raw["centroids"], np.float32)
        counts = np.asarray(raw["counts"], np.int64)
        if centroids.ndim != 2 or len(centroids) != len(counts) or not np.isfinite(centroids).all():
            raise ValueError("centroids and counts do not match")
        if counts.min() < int(raw["min_members"]):
            raise ValueError(f"a centroid averages fewer than {raw['min_members']} people")
        statistic = raw["statistic"]
        quantile, median = float(statistic["quantile"]), float(statistic["median_scale"])
        if not (0 < quantile < 1 and median > 0):
            raise ValueError(f"quantile {quantile} or median scale {median} out of range")
        genuine, pairs = _genuine(raw.get("genuine"))
        return cls(
            model_id, sha256, embedder_id, centroids, counts, quantile, median, raw["multiplicity"], genuine, pairs
        )

    def scales(self, descriptors: np.ndarray) -> np.ndarray:
        """(n,) float32 relative scale of each (n, 128) descriptor: 1.0 at the cohort's median crowding."""
        return (
            raw_scales(np.asarray(descriptors, np.float32), self.centroids, self.counts, self.quantile)
            / self.median_scale
        ).astype(np.float32)

    def genuine_miss(self, normalized_threshold: float) -> float | None:
        """Share of the cohort's genuine comparisons (a person's face against their own template)
        whose distance divided by the template's scale exceeds `normalized_threshold`: the chance
        that a template with threshold `normalized_threshold` x its scale misses its person. None
        when the cohort file has no genuine block."""
        if self.genuine is None:
            return None
        probabilities = np.linspace(0.0, 1.0, len(self.genuine))
        return float(1.0 - np.interp(normalized_threshold, self.genuine, probabilities, left=0.0, right=1.0))

    def person_factor(self, templates: int, knob: float, mode: str) -> float:
        """How many times more often a stranger matches a person with `templates` templates than one
        template, at `knob` (measured on the cohort; `templates` where it could not be measured)."""
        if templates <= 1:
            return float(max(templates, 0))
        table = self.multiplicity[mode]
        knobs = np.asarray(table["knobs"], float)
        measured = table["factor"]  # factor[k - 2][i]: k templates at knobs[i]; None where unmeasured
        k = min(templates, len(measured) + 1)
        i = int(np.clip(np.searchsorted(knobs, knob), 0, len(knobs) - 1))
        value = measured[k - 2][i]
        factor = float(k) if value is None else float(value)
        return factor * templates / k  # beyond the largest measured count: proportionally more


def _genuine(block: Any) -> tuple[np.ndarray | None, int]:
    """The genuine block's quantiles (ascending, finite, >= 0) and pair count; (None, 0) without one."""
    if block is None:
        return None, 0
    quantiles = np.asarray(block["quantiles"], np.float64)
    pairs = int(block["pairs"])
    if quantiles.ndim != 1 or len(quantiles) < 2 or not np.isfinite(quantiles).all() or pairs < 1:
        raise ValueError("the genuine block needs at least 2 finite quantiles and a pair count")
    if quantiles[0] < 0 or (np.diff(quantiles) < 0).any():
        raise ValueError("the genuine quantiles must be ascending distances >= 0")
    return quantiles, pairs


def _ranked_cdf(descriptors: np.ndarray, centroids: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per descriptor: the centroids' distances in ascending order, and the share of the cohort
    within each (centroids weighted by their counts, each centroid's weight spread around its
    distance: the midpoint rule), from which `raw_scales` reads the distance of a share."""
    d2 = (
        np.einsum("ij,ij->i", descriptors, descriptors)[:, None]
        - 2.0 * descriptors @ centroids.T
        + np.einsum("ij,ij->i", centroids, centroids)[None, :]
    )
    distances = np.sqrt(np.maximum(d2, 0.0))
    order = np.argsort(distances, axis=1)
    ranked = np.take_along_axis(distances, order, axis=1)
    weights = counts[order].astype(np.float64)
    cdf = (np.cumsum(weights, axis=1) - weights / 2) / counts.sum()
    return ranked, cdf


def raw_scales(descriptors: np.ndarray, centroids: np.ndarray, counts: np.ndarray, quantile: float) -> np.ndarray:
    """Distance from each descriptor within which `quantile` of the cohort lies (`_ranked_cdf`)."""
    ranked, cdf = _ranked_cdf(descriptors, centroids, counts)
    above = np.clip((cdf < quantile).sum(axis=1), 1, ranked.shape[1] - 1)  # first rank at or past the quantile
    rows = np.arange(len(ranked))
    lo, hi = cdf[rows, above - 1], cdf[rows, above]
    t = np.clip((quantile - lo) / np.maximum(hi - lo, 1e-12), 0.0, 1.0)
    return ranked[rows, above - 1] + t * (ranked[rows, above] - ranked[rows, above - 1])
