"""Each template's own scale: its threshold is the matching knob times it.

The scale says how crowded the descriptor space is around a template (1.0 = typically crowded,
below 1 = more crowded, so a stricter threshold). A `TemplateScaler` computes it from the
template alone; `edge.vision.cohort.Cohort` is the one the device uses (the gallery does not
import it: it depends on numpy and the standard library only). The gallery stores every
template's scale with the id and sha256 of the scaler that computed it, and recomputes them
all when a gallery is opened with another (`migrate`): a scale is always derived from the
template and the cohort, never taken from a bundle.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Protocol

import numpy as np

from edge.gallery.embedding import EMBEDDING_DIM, EMBEDDING_DTYPE, as_embeddings
from edge.gallery.errors import GalleryCorrupt, InvalidInput
from edge.gallery.schema import ADD_FACTOR_COLUMN, SCHEMA_VERSION, TEMPLATES_TABLE

log = logging.getLogger(__name__)


class TemplateScaler(Protocol):
    """Computes each template's relative scale (`Cohort` is one)."""

    @property
    def model_id(self) -> str: ...

    @property
    def sha256(self) -> str: ...

    def scales(self, descriptors: np.ndarray) -> np.ndarray:
        """(n,) positive scales of (n, 128) float32 descriptors."""
        ...


def compute_scales(scaler: TemplateScaler, vectors: np.ndarray) -> np.ndarray:
    """(n,) float64 scales of (n, 128) `vectors`, refused unless all are finite and > 0."""
    scales = np.asarray(scaler.scales(vectors), np.float64)
    if scales.shape != (len(vectors),):
        raise InvalidInput(f"scaler {scaler.model_id} gave {scales.shape} scales for {len(vectors)} templates")
    if not (np.isfinite(scales) & (scales > 0)).all():
        raise InvalidInput(f"scaler {scaler.model_id} gave a scale that is not a finite number > 0")
    return scales


def check_scales(stored: list[object], path: object) -> np.ndarray:
    """The stored scales as float32 if every one is a finite number > 0; else `GalleryCorrupt`."""
    numbers = all(isinstance(s, (int, float)) for s in stored)
    scales = np.array(stored if numbers else [], np.float32)
    if not numbers or not (np.isfinite(scales) & (scales > 0)).all():
        raise GalleryCorrupt(f"gallery {path} holds a template scale that is not a finite number > 0")
    return scales


def needs_migration(meta: dict[str, str], scaler: TemplateScaler) -> bool:
    """True for a gallery of an earlier schema or one whose scales another cohort computed."""
    return meta["schema_version"] != str(SCHEMA_VERSION) or (meta.get("cohort_id"), meta.get("cohort_sha256")) != (
        scaler.model_id,
        scaler.sha256,
    )


def migrate(conn: sqlite3.Connection, path: object, scaler: TemplateScaler) -> dict[str, str]:
    """Compute every template's scale with `scaler` and bring the file to the current schema, in
    the caller's open transaction (a failure rolls it back: the file stays as it was); returns
    the new meta and logs one warning saying what changed."""
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    if not needs_migration(meta, scaler):  # another process migrated it while we waited
        return meta
    rows = conn.execute("SELECT id, embedding FROM templates ORDER BY id").fetchall()
    ids = [row[0] for row in rows]
    vectors = np.frombuffer(b"".join(row[1] for row in rows), EMBEDDING_DTYPE).reshape(-1, EMBEDDING_DIM)
    scales = compute_scales(scaler, as_embeddings(vectors, "templates")) if rows else np.empty(0)
    if meta["schema_version"] == "1":
        was = "was schema 1: one threshold for all"
        conn.execute("ALTER TABLE templates RENAME TO templates_v1")
        conn.execute("DROP INDEX templates_by_identity")
        for statement in TEMPLATES_TABLE:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO templates (id, identity_id, embedding, quality, source, created_at, scale)"
            " SELECT id, identity_id, embedding, quality, source, created_at, 1.0 FROM templates_v1"
        )
        conn.execute("DROP TABLE templates_v1")
    elif meta["schema_version"] == "2":
        was = "was schema 2: no threshold factors"
        conn.execute(ADD_FACTOR_COLUMN)
    else:
        was = f"were computed with cohort {meta.get('cohort_id')} (sha256 {meta.get('cohort_sha256', '')[:12]})"
    conn.executemany("UPDATE templates SET scale = ? WHERE id = ?", zip(scales.tolist(), ids, strict=True))
    new = {"schema_version": str(SCHEMA_VERSION), "cohort_id": scaler.model_id, "cohort_sha256": scaler.sha256}
    conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", new.items())
    people = conn.execute("SELECT COUNT(*) FROM identities").fetchone()[0]
    log.warning(
        "gallery %s: computed per-template thresholds for %d template(s) of %d person(s) with cohort %s (%s)",
        path,
        len(ids),
        people,
        scaler.model_id,
        was,
    )
    return {**meta, **new}
