"""The gallery file: enrolled people and their face templates in one SQLite database.

Embeddings only, never images. A gallery records which embedder made its templates and
refuses to open under any other, because distances between descriptors of two models mean
nothing. A file that is missing, corrupt or not a gallery raises a `GalleryError` naming the
path and the problem, and is never modified by the attempt.

Every template is stored with its own scale (`edge.gallery.scales`), computed by the store's
`scaler` when it is added, and optionally a threshold factor (0 < f <= 1, negative feedback's
tightening: the template's threshold is knob * scale * factor); a gallery of an earlier schema, or
one scaled by another cohort, is migrated when it is opened. Writes are single transactions, so
a power cut leaves either the old or the new gallery.
A store belongs to the thread that opened it (sqlite3's rule); matching uses a `Matcher`
snapshot built by `matcher()`, never the store itself.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from edge.gallery.bundle import Bundle, read_bundle, write_bundle
from edge.gallery.content import (
    IdentityRecord,
    TemplateRecord,
    canonical_order,
    content_version,
    utc_now,
)
from edge.gallery.embedding import EMBEDDING_DIM, EMBEDDING_DTYPE, as_embeddings
from edge.gallery.errors import (
    GalleryCorrupt,
    GalleryError,
    GalleryExists,
    GalleryModelMismatch,
    GalleryNotFound,
    InvalidEmbedding,
    InvalidInput,
    UnknownIdentity,
)
from edge.gallery.fields import (
    check_embedder,
    check_identity_id,
    check_name,
    check_quality,
    check_source,
    check_threshold_factor,
)
from edge.gallery.matcher import Matcher
from edge.gallery.scales import TemplateScaler, check_scales, compute_scales, migrate, needs_migration
from edge.gallery.schema import CREATE_STATEMENTS, SCHEMA_VERSION, check_schema

_INSERT_TEMPLATE = (
    "INSERT INTO templates (identity_id, embedding, quality, source, created_at, scale, threshold_factor)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True, slots=True)
class IdentitySummary:
    """One enrolled person as listed by `GalleryStore.identities()`."""

    identity_id: str
    name: str
    templates: int
    enrolled_at: datetime


class GalleryStore:
    """One gallery file. Make one with `create`, `open` or `from_bundle`; close it when done.

    `scaler` computes each template's scale (the device passes its embedder's `Cohort`); it is
    required, so no gallery is ever written or matched with scales from another cohort.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, meta: dict[str, str], scaler: TemplateScaler) -> None:
        self._conn = conn
        self.path = path
        self.model_id = meta["model_id"]
        self.model_sha256 = meta["model_sha256"]
        self.created_at = datetime.fromisoformat(meta["created_at"])
        self.scaler = scaler
        self._version: tuple[tuple[int, int], str] | None = None

    @classmethod
    def create(
        cls, path: str | os.PathLike[str], model_id: str, model_sha256: str, *, scaler: TemplateScaler
    ) -> GalleryStore:
        """A new, empty gallery for this embedder; refuses to overwrite any existing file. A missing
        folder is made (0700), as on a board whose first gallery arrives over MQTT."""
        path = Path(path)
        model_id, model_sha256 = check_embedder(model_id, model_sha256)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:  # FileExistsError too: a file where the folder should be
            raise GalleryError(f"cannot create gallery {path}: {e}") from e
        try:  # exclusive create, readable by the owner only: the file will hold biometric data
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError as e:
            raise GalleryExists(f"gallery {path} already exists; open it or remove it first") from e
        except OSError as e:
            raise GalleryError(f"cannot create gallery {path}: {e}") from e
        meta = {
            "schema_version": str(SCHEMA_VERSION),
            "embedding_dim": str(EMBEDDING_DIM),
            "model_id": model_id,
            "model_sha256": model_sha256,
            "created_at": utc_now(),
            "cohort_id": scaler.model_id,
            "cohort_sha256": scaler.sha256,
        }
        conn = None
        try:
            conn = _connect(path)
            with _transaction(conn):
                for statement in CREATE_STATEMENTS:
                    conn.execute(statement)
                conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
            conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            if conn is not None:
                conn.close()
            path.unlink(missing_ok=True)
            raise
        return cls(conn, path, meta, scaler)

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], model_id: str, model_sha256: str, *, scaler: TemplateScaler
    ) -> GalleryStore:
        """An existing gallery, checked (integrity, schema) and refused unless it was built
        with exactly this embedder (`GalleryModelMismatch`). Checks only read the file; a
        gallery that passes them but is of an earlier schema or scaled by another cohort is then migrated
        (`edge.gallery.scales.migrate`, one transaction, one logged warning)."""
        path = Path(path)
        model_id, model_sha256 = check_embedder(model_id, model_sha256)
        if not path.is_file():
            raise GalleryNotFound(f"gallery {path} does not exist or is not a file")
        try:
            conn = _connect(path)
        except sqlite3.Error as e:
            raise GalleryError(f"cannot open gallery {path}: {e}") from e
        try:
            meta = check_schema(conn, str(path))
            _check_same_embedder(f"gallery {path}", meta["model_id"], meta["model_sha256"], model_id, model_sha256)
            if needs_migration(meta, scaler):
                meta = _migrate(conn, path, scaler)
            conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, meta, scaler)

    @classmethod
    def from_bundle(
        cls,
        bundle: Bundle | str | os.PathLike[str],
        path: str | os.PathLike[str],
        model_id: str,
        model_sha256: str,
        *,
        scaler: TemplateScaler,
    ) -> GalleryStore:
        """A new gallery file at `path` holding the bundle's content (a parsed `Bundle` or a
        bundle file), each template scaled by `scaler`; nothing is created unless the bundle is
        valid and made with this embedder."""
        model_id, model_sha256 = check_embedder(model_id, model_sha256)
        what = f"gallery bundle {bundle.version}" if isinstance(bundle, Bundle) else f"gallery bundle {bundle}"
        if not isinstance(bundle, Bundle):
            bundle = read_bundle(bundle)
        _check_same_embedder(
            what,
            bundle.model_id,
            bundle.model_sha256,
            model_id,
            model_sha256,
        )
        store = cls.create(path, model_id, model_sha256, scaler=scaler)
        try:
            store._replace(bundle.identities)
        except BaseException:
            store.close()
            store.path.unlink(missing_ok=True)
            raise
        return store

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> GalleryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(
        self,
        identity_id: str,
        name: str,
        embeddings: np.ndarray,
        qualities: Sequence[float | None] | np.ndarray | None = None,
        sources: Sequence[str] | None = None,
        factors: Sequence[float | None] | None = None,
    ) -> int:
        """Enrol templates for one person in one transaction; returns how many were added.

        embeddings: (n, 128) float32 descriptors, n >= 1, all finite.
        qualities: n quality scores (None = unknown); sources: n short labels such as the
        file name each template came from (never the image); factors: n threshold factors
        (None = 1, else 0 < f <= 1: the template's threshold is tightened by it). Adding to an
        existing identity appends templates; its name must then be the enrolled one.
        """
        identity_id, name = check_identity_id(identity_id), check_name(name)
        vectors = as_embeddings(embeddings)
        n = len(vectors)
        quality_list = [None] * n if qualities is None else [check_quality(q) for q in qualities]
        source_list = [""] * n if sources is None else [check_source(s) for s in sources]
        factor_list = [None] * n if factors is None else [check_threshold_factor(f) for f in factors]
        if len(quality_list) != n or len(source_list) != n or len(factor_list) != n:
            raise InvalidInput(
                f"{n} embeddings but {len(quality_list)} qualities, {len(source_list)} sources"
                f" and {len(factor_list)} threshold factors"
            )
        scales = compute_scales(self.scaler, vectors)
        now = utc_now()
        with _transaction(self._conn):
            row = self._conn.execute("SELECT name FROM identities WHERE identity_id = ?", (identity_id,)).fetchone()
            if row is None:
                self._conn.execute(
                    "INSERT INTO identities (identity_id, name, enrolled_at) VALUES (?, ?, ?)",
                    (identity_id, name, now),
                )
            elif row[0] != name:
                raise InvalidInput(
                    f"identity {identity_id!r} is enrolled as {row[0]!r}, not {name!r}; remove it to rename"
                )
            self._conn.executemany(
                _INSERT_TEMPLATE,
                (
                    (identity_id, v.tobytes(), q, s, now, scale, f)
                    for v, q, s, scale, f in zip(
                        vectors, quality_list, source_list, scales.tolist(), factor_list, strict=True
                    )
                ),
            )
        return n

    def remove(self, identity_id: str) -> int:
        """Remove a person and every one of their templates; returns the templates removed."""
        with _transaction(self._conn):
            removed = self._conn.execute("DELETE FROM templates WHERE identity_id = ?", (identity_id,)).rowcount
            if self._conn.execute("DELETE FROM identities WHERE identity_id = ?", (identity_id,)).rowcount == 0:
                raise UnknownIdentity(f"identity {identity_id!r} is not enrolled in gallery {self.path}")
        return removed

    def identities(self) -> list[IdentitySummary]:
        """Everyone enrolled, sorted by identity id."""
        rows = self._fetch(
            "SELECT i.identity_id, i.name, COUNT(t.id), i.enrolled_at"
            " FROM identities i LEFT JOIN templates t ON t.identity_id = i.identity_id"
            " GROUP BY i.identity_id ORDER BY i.identity_id"
        )
        return [IdentitySummary(i, name, n, datetime.fromisoformat(at)) for i, name, n, at in rows]

    @property
    def version(self) -> str:
        """Content version (16 hex chars): equal content gives an equal version on any device,
        any enrolment change gives a new one. Cached until the file changes."""
        key = self._change_key()
        if self._version is None or self._version[0] != key:
            self._version = (
                key,
                content_version(self.model_id, self.model_sha256, self._records()),
            )
        return self._version[1]

    def matcher(self, per_template: bool = True) -> Matcher:
        """A fresh immutable `Matcher` over the current content, tagged with its version: with
        each template's stored scale (`per_template`), or every scale 1 (one global threshold),
        times its threshold factor in both modes (a tightened template stays tightened).

        Call again after every change; the loop swaps the new one in between frames.
        """
        key = self._change_key()
        records = canonical_order(self._records())
        version = content_version(self.model_id, self.model_sha256, records)
        self._version = (key, version)
        templates = [t for r in records for t in r.templates]
        rows = [r.identity_id for r in records for _ in r.templates]
        vectors = np.frombuffer(b"".join(t.embedding for t in templates), EMBEDDING_DTYPE).reshape(-1, EMBEDDING_DIM)
        scales = None
        if per_template:  # equal embeddings have equal scales, so the embedding finds its scale
            scale_of = dict(self._conn.execute("SELECT embedding, scale FROM templates"))
            scales = check_scales([scale_of[t.embedding] for t in templates], self.path)
        if any(t.threshold_factor is not None for t in templates):
            factors = np.array([t.threshold_factor or 1.0 for t in templates], np.float32)
            scales = factors if scales is None else scales * factors
        try:
            return Matcher(vectors, rows, version, scales)
        except InvalidEmbedding as e:
            raise GalleryCorrupt(f"gallery {self.path} holds an invalid template: {e}") from e

    def export(self, path: str | os.PathLike[str]) -> str:
        """Write the whole gallery as a JSON bundle (`edge.gallery.bundle`); returns its version.

        The bundle holds the embeddings of ENROLLED people only, with names and source
        labels: biometric data, for moving a gallery between trusted machines only.
        """
        bundle = self.bundle()
        write_bundle(path, bundle)
        return bundle.version

    def bundle(self) -> Bundle:
        """The whole gallery as a `Bundle` (`encode_bundle` makes it the bytes `gallery/set` seals)."""
        records = canonical_order(self._records())
        version = content_version(self.model_id, self.model_sha256, records)
        return Bundle(self.model_id, self.model_sha256, version, tuple(records))

    def import_bundle(self, path: str | os.PathLike[str]) -> str:
        """Replace the whole gallery with a bundle's content in one transaction (`gallery/set`).

        The bundle must be intact and made with this gallery's embedder; otherwise nothing
        changes. Returns the new version, which equals the bundle's.
        """
        bundle = read_bundle(path)
        _check_same_embedder(
            f"gallery bundle {path}",
            bundle.model_id,
            bundle.model_sha256,
            self.model_id,
            self.model_sha256,
        )
        self._replace(bundle.identities)
        return bundle.version

    def _replace(self, identities: Sequence[IdentityRecord]) -> None:
        blobs = b"".join(t.embedding for r in identities for t in r.templates)
        vectors = np.frombuffer(blobs, EMBEDDING_DTYPE).reshape(-1, EMBEDDING_DIM)
        scales = iter(compute_scales(self.scaler, vectors).tolist() if len(vectors) else [])
        with _transaction(self._conn):
            self._conn.execute("DELETE FROM templates")
            self._conn.execute("DELETE FROM identities")
            self._conn.executemany(
                "INSERT INTO identities (identity_id, name, enrolled_at) VALUES (?, ?, ?)",
                ((r.identity_id, r.name, r.enrolled_at) for r in identities),
            )
            self._conn.executemany(
                _INSERT_TEMPLATE,
                (
                    (r.identity_id, t.embedding, t.quality, t.source, t.created_at, next(scales), t.threshold_factor)
                    for r in identities
                    for t in r.templates
                ),
            )

    def _records(self) -> list[IdentityRecord]:
        """Everything matched against. Ids are checked as `add` checks them, since they travel in
        match events: a file written by other software (or an older version) is `GalleryCorrupt`
        when it holds one that no match event may carry."""
        rows = self._fetch(
            "SELECT i.identity_id, i.name, i.enrolled_at,"
            " t.embedding, t.quality, t.source, t.created_at, t.threshold_factor"
            " FROM identities i JOIN templates t ON t.identity_id = i.identity_id"
        )
        grouped: dict[str, tuple[str, str, list[TemplateRecord]]] = {}
        for identity_id, name, enrolled_at, blob, quality, source, created_at, factor in rows:
            grouped.setdefault(identity_id, (name, enrolled_at, []))[2].append(
                TemplateRecord(bytes(blob), quality, source, created_at, factor)
            )
        try:
            for identity_id in grouped:
                check_identity_id(identity_id)
        except InvalidInput as e:
            raise GalleryCorrupt(f"gallery {self.path}: {e}") from e
        return [IdentityRecord(i, name, at, tuple(ts)) for i, (name, at, ts) in grouped.items()]

    def _fetch(self, query: str) -> list[tuple]:
        """All rows of `query`; text that is not UTF-8 (written by other software) is one
        `GalleryError` naming the file, not sqlite3's exception."""
        try:
            return self._conn.execute(query).fetchall()
        except sqlite3.Error as e:
            raise GalleryError(f"cannot read gallery {self.path}: {e}") from e

    def _change_key(self) -> tuple[int, int]:
        """Changes whenever any connection commits to the file (data_version) or we write."""
        return self._conn.execute("PRAGMA data_version").fetchone()[0], self._conn.total_changes


def empty_matcher(model_id: str, model_sha256: str, per_template: bool = True) -> Matcher:
    """The matcher of a gallery of this embedder with nobody enrolled, as `GalleryStore.create(...)
    .matcher()` gives it (the same version), without making a file."""
    model_id, model_sha256 = check_embedder(model_id, model_sha256)
    templates = np.empty((0, EMBEDDING_DIM), EMBEDDING_DTYPE)
    return Matcher(templates, [], content_version(model_id, model_sha256, []), np.empty(0) if per_template else None)


def _migrate(conn: sqlite3.Connection, path: Path, scaler: TemplateScaler) -> dict[str, str]:
    """`migrate` in one transaction; a failure leaves the file as it was and names it."""
    try:
        with _transaction(conn):
            return migrate(conn, path, scaler)
    except sqlite3.Error as e:  # read-only file, full disk, locked
        raise GalleryError(f"cannot migrate gallery {path} to schema {SCHEMA_VERSION}: {e}") from e
    except InvalidInput as e:  # a template no scale can be computed for, or the scaler's fault
        raise GalleryError(f"cannot migrate gallery {path}: {e}") from e


def _connect(path: Path) -> sqlite3.Connection:
    """Read-write connection that never creates the file; transactions are explicit."""
    return sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True, isolation_level=None)


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _check_same_embedder(what: str, their_id: str, their_sha: str, model_id: str, model_sha256: str) -> None:
    if (their_id, their_sha) != (model_id, model_sha256):
        raise GalleryModelMismatch(
            f"{what} was built with embedder {their_id} (sha256 {their_sha}), but the running "
            f"embedder is {model_id} (sha256 {model_sha256}); re-enrol with this embedder, load a "
            f"gallery built for it, or set models.embedder to {their_id} to keep using that one"
        )
