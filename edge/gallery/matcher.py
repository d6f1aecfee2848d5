"""Nearest-template search over a frozen snapshot of the gallery.

Distance is Euclidean between 128-d descriptors (lower = more alike), computed for all
templates at once as ||t||^2 - 2 t.v + ||v||^2 with one matrix-vector product. Each template i
has a scale s_i (`edge.gallery.scales`; all 1 with one global threshold) and its threshold is
knob * s_i, so the candidate for a probe is the template with the smallest normalized distance
d_i / s_i, and it matches when that is <= knob. A person's normalized distance is the minimum
over their templates, so the nearest person is the owner of the nearest template. With every
scale 1 this is plain nearest-distance matching, computed exactly as before scales existed.

A `Matcher` never changes after it is built: when the gallery changes, build a new one
(`GalleryStore.matcher()`) and swap the reference between frames. Templates are kept
transposed, (128, N): on the 2-core x86 this was measured on, the product v @ T^T over that
layout ran two to three times faster than T @ v over (N, 128).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edge.gallery.content import template_id
from edge.gallery.embedding import EMBEDDING_DIM, EMBEDDING_DTYPE, as_embeddings
from edge.gallery.errors import InvalidEmbedding, InvalidInput

# nearest_many works through probes in chunks whose score matrix stays near this many floats.
_BATCH_SCORES = 1 << 22


@dataclass(frozen=True, slots=True)
class Nearest:
    """The closest enrolled person to a probe, however far: not a match by itself.

    distance: raw Euclidean distance to their nearest template (smallest distance / scale);
    scale: that template's scale, so its threshold at a knob is knob * scale.
    """

    identity_id: str
    distance: float
    scale: float = 1.0

    @property
    def normalized(self) -> float:
        """distance / scale: what the knob is compared with."""
        return self.distance / self.scale


@dataclass(frozen=True, slots=True)
class Match:
    """An open-set match: the nearest person, whose raw distance is <= threshold, the threshold
    of the template that matched (knob * its scale), and that template's opaque id
    (`edge.gallery.content.template_id`; not compared: it follows from the template)."""

    identity_id: str
    distance: float
    threshold: float
    template_id: str = field(default="", compare=False)


class Matcher:
    """Immutable search structure over (N, 128) templates with one identity id per row.

    The single-probe methods reuse preallocated scratch buffers, so one `Matcher` must not be
    queried from several threads at once (the loop owns its matcher; others build their own).
    """

    def __init__(
        self,
        templates: np.ndarray,
        row_identities: Sequence[str],
        version: str = "",
        scales: np.ndarray | None = None,
    ) -> None:
        """templates: (N, 128) float32, N >= 0; row_identities: N identity ids, row by row.

        version: the gallery content version this snapshot was built from (for events).
        scales: N finite scales > 0, one per template; None: one global threshold (all 1).
        """
        templates = np.asarray(templates)
        if templates.shape != (0, EMBEDDING_DIM):  # an empty gallery is valid, as (0, 128)
            templates = as_embeddings(templates, "templates")
        if len(row_identities) != len(templates):
            raise InvalidInput(f"{len(templates)} templates but {len(row_identities)} identity ids")
        self._version = version
        self._identity_ids = tuple(dict.fromkeys(row_identities))
        index = {identity_id: i for i, identity_id in enumerate(self._identity_ids)}
        self._row_identity = np.fromiter((index[r] for r in row_identities), np.int64, len(row_identities))
        self._templates_t = np.ascontiguousarray(templates.T, dtype=np.float32)
        self._sq_norms = np.einsum("ij,ij->i", templates, templates, dtype=np.float64).astype(np.float32)
        self._sq_scales: np.ndarray | None = None  # s_i^2, and 1 / s_i^2 for the search
        self._inv_sq_scales: np.ndarray | None = None
        if scales is not None:
            s = np.asarray(scales, np.float64)
            if s.shape != (len(templates),) or not (np.isfinite(s) & (s > 0)).all():
                raise InvalidInput(f"scales must be {len(templates)} finite numbers > 0")
            self._sq_scales = (s * s).astype(np.float32)
            self._inv_sq_scales = (1.0 / (s * s)).astype(np.float32)
        for array in (self._templates_t, self._sq_norms, self._row_identity, self._sq_scales, self._inv_sq_scales):
            if array is not None:
                array.flags.writeable = False
        self._probe = np.empty(EMBEDDING_DIM, np.float32)
        self._scores = np.empty(len(templates), np.float32)
        # Each row's template id, once here (not per frame): the bytes a gallery stores the row as.
        rows = np.ascontiguousarray(templates, EMBEDDING_DTYPE)
        self._template_ids = tuple(template_id(row.tobytes()) for row in rows)

    @property
    def version(self) -> str:
        """Content version of the gallery this snapshot was built from."""
        return self._version

    @property
    def identity_ids(self) -> tuple[str, ...]:
        """Enrolled identity ids, in row order."""
        return self._identity_ids

    @property
    def template_count(self) -> int:
        return len(self._sq_norms)

    @property
    def per_template(self) -> bool:
        """True when templates have their own scales; False: one global threshold."""
        return self._sq_scales is not None

    @property
    def template_ids(self) -> tuple[str, ...]:
        """Each row's template id, in row order."""
        return self._template_ids

    def template_counts(self) -> dict[str, int]:
        """Templates per enrolled identity (a person's expected false match rate grows with them)."""
        counts = np.bincount(self._row_identity, minlength=len(self._identity_ids))
        return dict(zip(self._identity_ids, counts.tolist(), strict=True))

    def __len__(self) -> int:
        """Number of enrolled identities."""
        return len(self._identity_ids)

    def nearest(self, vector: np.ndarray) -> Nearest | None:
        """Nearest person to one (128,) float32 probe; None if the gallery is empty."""
        best = self._nearest_row(vector)
        return None if best is None else best[0]

    def _nearest_row(self, vector: np.ndarray) -> tuple[Nearest, int] | None:
        """`nearest` with the row of the template that decided it."""
        v = np.asarray(vector, dtype=np.float32)
        if v.shape != (EMBEDDING_DIM,):
            raise InvalidEmbedding(f"probe must have shape ({EMBEDDING_DIM},), got {v.shape}")
        v_sq = float(np.dot(v, v))
        if not math.isfinite(v_sq):  # NaN or inf anywhere in v shows here, at no extra cost
            raise InvalidEmbedding("probe contains NaN or inf")
        if not self._scores.size:
            return None
        np.multiply(v, -2.0, out=self._probe)
        np.matmul(self._probe, self._templates_t, out=self._scores)
        np.add(self._scores, self._sq_norms, out=self._scores)
        if self._inv_sq_scales is None:
            row = int(self._scores.argmin())
            distance = math.sqrt(max(float(self._scores[row]) + v_sq, 0.0))
            return Nearest(self._identity_ids[self._row_identity[row]], distance), row
        assert self._sq_scales is not None
        np.add(self._scores, v_sq, out=self._scores)  # squared distances, then divided by s_i^2
        np.multiply(self._scores, self._inv_sq_scales, out=self._scores)
        row = int(self._scores.argmin())
        sq_scale = float(self._sq_scales[row])
        distance = math.sqrt(max(float(self._scores[row]) * sq_scale, 0.0))
        return Nearest(self._identity_ids[self._row_identity[row]], distance, math.sqrt(sq_scale)), row

    def match(self, vector: np.ndarray, knob: float) -> Match | None:
        """The nearest person if their normalized distance is <= knob, else None (open set).

        The match carries the raw distance and its template's threshold, knob * scale (the knob
        itself with one global threshold). None means "nobody enrolled is close enough"; the
        nearest name is never returned regardless. Lower knobs are stricter.
        """
        if not (math.isfinite(knob) and knob >= 0):
            raise InvalidInput(f"threshold must be a finite distance >= 0, got {knob!r}")
        found = self._nearest_row(vector)
        if found is None or found[0].normalized > knob:
            return None
        best, row = found
        return Match(best.identity_id, best.distance, float(knob) * best.scale, self._template_ids[row])

    def nearest_many(self, vectors: np.ndarray) -> list[Nearest | None]:
        """`nearest` for each row of (k, 128) float32 probes, k >= 0, in order."""
        probes = np.asarray(vectors)
        if probes.ndim == 2 and probes.shape[0] == 0 and probes.shape[1] == EMBEDDING_DIM:
            return []
        probes = as_embeddings(probes, "probes")
        if not self._scores.size:
            return [None] * len(probes)
        v_sq = np.einsum("ij,ij->i", probes, probes, dtype=np.float64)
        results: list[Nearest | None] = []
        chunk = max(1, _BATCH_SCORES // self.template_count)
        for start in range(0, len(probes), chunk):
            scores = probes[start : start + chunk] @ self._templates_t
            scores *= -2.0
            scores += self._sq_norms
            if self._inv_sq_scales is None:
                rows = scores.argmin(axis=1)
                best = scores[np.arange(len(rows)), rows] + v_sq[start : start + chunk]
                sq_scales = np.ones(len(rows))
            else:
                assert self._sq_scales is not None
                scores += v_sq[start : start + chunk, None].astype(np.float32)
                scores *= self._inv_sq_scales
                rows = scores.argmin(axis=1)
                sq_scales = self._sq_scales[rows].astype(np.float64)
                best = scores[np.arange(len(rows)), rows] * sq_scales
            distances = np.sqrt(np.maximum(best, 0.0))
            results.extend(
                Nearest(self._identity_ids[self._row_identity[r]], float(d), math.sqrt(q))
                for r, d, q in zip(rows, distances, sq_scales, strict=True)
            )
        return results
