"""The SQLite layout of a gallery file and the read-only check that a file has it.

The check only reads, so a file that fails it is left byte for byte as it was.
"""

from __future__ import annotations

import sqlite3

from edge.gallery.embedding import EMBEDDING_BYTES, EMBEDDING_DIM
from edge.gallery.errors import GalleryCorrupt, GalleryError, GallerySchemaError

SCHEMA_VERSION = 1
# SQLite header field marking the file as an edge gallery ("EGAL"), so `file` and we can tell.
APPLICATION_ID = 0x4547414C

CREATE_STATEMENTS = (
    """CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE identities (
        identity_id TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        enrolled_at TEXT NOT NULL
    ) WITHOUT ROWID""",
    f"""CREATE TABLE templates (
        id          INTEGER PRIMARY KEY,
        identity_id TEXT NOT NULL REFERENCES identities(identity_id),
        embedding   BLOB NOT NULL CHECK (length(embedding) = {EMBEDDING_BYTES}),
        quality     REAL,
        source      TEXT NOT NULL,
        created_at  TEXT NOT NULL
    )""",
    "CREATE INDEX templates_by_identity ON templates(identity_id)",
    f"PRAGMA application_id = {APPLICATION_ID}",
)

_COLUMNS = {
    "meta": {"key", "value"},
    "identities": {"identity_id", "name", "enrolled_at"},
    "templates": {"id", "identity_id", "embedding", "quality", "source", "created_at"},
}
_META_KEYS = {"schema_version", "embedding_dim", "model_id", "model_sha256", "created_at"}


def check_schema(conn: sqlite3.Connection, path: str) -> dict[str, str]:
    """The meta table of a valid gallery; raises `GalleryCorrupt` or `GallerySchemaError`."""
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        integrity = conn.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.OperationalError as e:  # locked, I/O error: the file itself may be fine
        raise GalleryError(f"cannot read gallery {path}: {e}") from e
    except sqlite3.DatabaseError as e:
        raise GalleryCorrupt(f"gallery {path} is not a readable SQLite database: {e}") from e
    if integrity != "ok":
        raise GalleryCorrupt(f"gallery {path} fails SQLite's integrity check: {integrity}")
    if app_id != APPLICATION_ID:
        raise GallerySchemaError(
            f"{path} is an SQLite database but not an edge gallery "
            f"(application_id {app_id:#x}, expected {APPLICATION_ID:#x})"
        )
    for table, expected in _COLUMNS.items():
        found = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if found != expected:
            raise GallerySchemaError(
                f"gallery {path}: table '{table}' has columns {sorted(found)}, expected {sorted(expected)}"
            )
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    missing = _META_KEYS - meta.keys()
    if missing:
        raise GallerySchemaError(f"gallery {path}: meta lacks {sorted(missing)}")
    if meta["schema_version"] != str(SCHEMA_VERSION):
        raise GallerySchemaError(
            f"gallery {path} has schema version {meta['schema_version']}; this software reads version {SCHEMA_VERSION}"
        )
    if meta["embedding_dim"] != str(EMBEDDING_DIM):
        raise GallerySchemaError(
            f"gallery {path} holds {meta['embedding_dim']}-d embeddings; this software uses {EMBEDDING_DIM}"
        )
    return meta
