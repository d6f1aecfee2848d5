"""Galleries for benchmarks: real people enrolled from photos, plus synthetic identities.

Synthetic templates are random directions scaled to the norm of real descriptors, so matching
costs what it costs in service (the search does the same arithmetic whatever the values) while
no stranger can come near one: two of them lie about 2.1 apart, real faces of one person under 0.6.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edge.enrollment import Person, add_to_gallery, describe_people
from edge.gallery import EMBEDDING_DIM, GalleryStore, TemplateScaler
from edge.vision import Vision

log = logging.getLogger(__name__)

# Mean Euclidean norm of this project's int8 descriptors over 80 photos of identities.csv
# (standard deviation 0.07).
DESCRIPTOR_NORM = 1.5


def synthetic_templates(identities: int, per_identity: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """(identities * per_identity, 128) float32 templates and their identity ids, row by row."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((identities * per_identity, EMBEDDING_DIM)).astype(np.float32)
    vectors *= DESCRIPTOR_NORM / np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"synthetic-{i:06d}" for i in range(identities) for _ in range(per_identity)]
    return vectors, ids


def build_gallery(
    path: Path,
    vision: Vision,
    people: list[Person],
    synthetic: int,
    scaler: TemplateScaler,
    per_identity: int = 5,
) -> dict[str, object]:
    """A gallery file with `people` enrolled as `edge enroll` enrolls them (each photo gated)
    and `synthetic` made-up identities of `per_identity` templates, scaled by `scaler` (the
    embedder's cohort); returns what went in."""
    embedder = vision.embedder
    outcomes = describe_people(vision, people)
    rejected = [f"{photo.name}: {reason}" for o in outcomes for photo, reason in o.rejected]
    with GalleryStore.create(path, embedder.model_id, embedder.sha256, scaler=scaler) as store:
        add_to_gallery(store, outcomes)
        vectors, ids = synthetic_templates(synthetic, per_identity)
        for i in range(synthetic):
            rows = slice(i * per_identity, (i + 1) * per_identity)
            store.add(ids[rows.start], ids[rows.start], vectors[rows])
        templates = store.matcher().template_count
    if rejected:
        log.info("bench gallery: %d photos not enrolled: %s", len(rejected), "; ".join(rejected))
    return {
        "enrolled": [o.person.name for o in outcomes if o.accepted],
        "synthetic_identities": synthetic,
        "templates": templates,
        "photos_rejected": len(rejected),
    }
