"""The gallery file: enrolled people and their face templates in one SQLite database.

Embeddings only, never images. A gallery records which embedder made its templates and
refuses to open under any other, because distances between descriptors of two models mean
nothing. A file that is missing, corrupt or not a gallery raises a `GalleryError` naming the
path and the problem, and is never modified by the attempt.

Writes are single transactions, so a power cut leaves either the old or the new gallery.
A store belongs to the thread that opened it (sqlite3's rule); matching uses a `Matcher`
snapshot built by `matcher()`, never the store itself.
"""

from __future__ import annotations

import glob
import os
import secrets
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
)
from edge.gallery.matcher import Matcher
from edge.gallery.schema import CREATE_STATEMENTS, SCHEMA_VERSION, check_schema

_INCOMING = ".incoming"  # suffix of a replacement being built (`replace_gallery`)
_INSERT_TEMPLATE = "INSERT INTO templates (identity_id, embedding, quality, source, created_at) VALUES (?, ?, ?, ?, ?)"


@dataclass(frozen=True, slots=True)
class IdentitySummary:
    """One enrolled person as listed by `GalleryStore.identities()`."""

    identity_id: str
    name: str
    templates: int
    enrolled_at: datetime


class GalleryStore:
    """One gallery file. Make one with `create`, `open` or `from_bundle`; close it when done."""

    def __init__(self, conn: sqlite3.Connection, path: Path, meta: dict[str, str]) -> None:
        self._conn = conn
        self.path = path
        self.model_id = meta["model_id"]
        self.model_sha256 = meta["model_sha256"]
        self.created_at = datetime.fromisoformat(meta["created_at"])
        self._version: tuple[tuple[int, int], str] | None = None

    @classmethod
    def create(cls, path: str | os.PathLike[str], model_id: str, model_sha256: str) -> GalleryStore:
        """A new, empty gallery for this embedder; refuses to overwrite any existing file."""
        path = Path(path)
        model_id, model_sha256 = check_embedder(model_id, model_sha256)
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
        return cls(conn, path, meta)

    @classmethod
    def open(cls, path: str | os.PathLike[str], model_id: str, model_sha256: str) -> GalleryStore:
        """An existing gallery, checked (integrity, schema) and refused unless it was built
        with exactly this embedder (`GalleryModelMismatch`). Checks only read the file."""
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
            conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, meta)

    @classmethod
    def from_bundle(
        cls,
        bundle: Bundle | str | os.PathLike[str],
        path: str | os.PathLike[str],
        model_id: str,
        model_sha256: str,
    ) -> GalleryStore:
        """A new gallery file at `path` holding the bundle's content (a parsed `Bundle` or a
        bundle file); nothing is created unless the bundle is valid and made with this embedder."""
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
        store = cls.create(path, model_id, model_sha256)
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
    ) -> int:
        """Enrol templates for one person in one transaction; returns how many were added.

        embeddings: (n, 128) float32 descriptors, n >= 1, all finite.
        qualities: n quality scores (None = unknown); sources: n short labels such as the
        file name each template came from (never the image). Adding to an existing identity
        appends templates; its name must then be the enrolled one.
        """
        identity_id, name = check_identity_id(identity_id), check_name(name)
        vectors = as_embeddings(embeddings)
        n = len(vectors)
        quality_list = [None] * n if qualities is None else [check_quality(q) for q in qualities]
        source_list = [""] * n if sources is None else [check_source(s) for s in sources]
        if len(quality_list) != n or len(source_list) != n:
            raise InvalidInput(f"{n} embeddings but {len(quality_list)} qualities and {len(source_list)} sources")
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
                    (identity_id, v.tobytes(), q, s, now)
                    for v, q, s in zip(vectors, quality_list, source_list, strict=True)
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
        rows = self._conn.execute(
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

    def matcher(self) -> Matcher:
        """A fresh immutable `Matcher` over the current content, tagged with its version.

        Call again after every change; the loop swaps the new one in between frames.
        """
        key = self._change_key()
        records = canonical_order(self._records())
        version = content_version(self.model_id, self.model_sha256, records)
        self._version = (key, version)
        blobs = b"".join(t.embedding for r in records for t in r.templates)
        rows = [r.identity_id for r in records for _ in r.templates]
        templates = np.frombuffer(blobs, EMBEDDING_DTYPE).reshape(-1, EMBEDDING_DIM)
        try:
            return Matcher(templates, rows, version)
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
                    (r.identity_id, t.embedding, t.quality, t.source, t.created_at)
                    for r in identities
                    for t in r.templates
                ),
            )

    def _records(self) -> list[IdentityRecord]:
        rows = self._conn.execute(
            "SELECT i.identity_id, i.name, i.enrolled_at,"
            " t.embedding, t.quality, t.source, t.created_at"
            " FROM identities i JOIN templates t ON t.identity_id = i.identity_id"
        )
        grouped: dict[str, tuple[str, str, list[TemplateRecord]]] = {}
        for identity_id, name, enrolled_at, blob, quality, source, created_at in rows:
            grouped.setdefault(identity_id, (name, enrolled_at, []))[2].append(
                TemplateRecord(bytes(blob), quality, source, created_at)
            )
        return [IdentityRecord(i, name, at, tuple(ts)) for i, (name, at, ts) in grouped.items()]

    def _change_key(self) -> tuple[int, int]:
        """Changes whenever any connection commits to the file (data_version) or we write."""
        return self._conn.execute("PRAGMA data_version").fetchone()[0], self._conn.total_changes


def replace_gallery(path: str | os.PathLike[str], bundle: Bundle, model_id: str, model_sha256: str) -> str:
    """Replace the gallery file at `path` (or create it) with `bundle`'s content, atomically;
    returns the new version. `edge gallery import` and `gallery/set` both come here.

    The new file is built beside the old one (same folder, so the same filesystem), fsynced,
    renamed over it, and the folder fsynced: a reader (a running device's `GalleryWatcher`) or
    a power cut sees the old gallery or the new one, never a mixture, and never a half-built
    file. A bundle that is invalid or for another embedder changes nothing.
    """
    path = Path(path)
    remove_leftovers(path)
    scratch = path.with_name(f".{path.name}.{secrets.token_hex(6)}{_INCOMING}")
    try:
        GalleryStore.from_bundle(bundle, scratch, model_id, model_sha256).close()
        _fsync(scratch)
        os.replace(scratch, path)
        _fsync(path.parent)  # the rename itself survives a power cut
    except OSError as e:
        raise GalleryError(f"cannot replace gallery {path}: {e.strerror or e}") from e
    finally:
        scratch.unlink(missing_ok=True)
    return bundle.version


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_leftovers(path: str | os.PathLike[str]) -> None:
    """Delete half-built replacements of the gallery at `path` that a killed process left
    (they hold templates: biometric data, so they are not left lying about)."""
    path = Path(path)
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*{_INCOMING}*"):
        leftover.unlink(missing_ok=True)


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
            f"embedder is {model_id} (sha256 {model_sha256}); re-enrol with this embedder or "
            f"load a gallery built for it"
        )
