"""The SQLite layout of a gallery file and the read-only check that a file has it.

The check only reads, so a file that fails it is left byte for byte as it was. It accepts
schema 1 (no per-template scales) and 2 (no threshold factors) too: `edge.gallery.scales.migrate`
brings such a file to the current schema when a store opens it.
"""

from __future__ import annotations

import sqlite3

from edge.gallery.embedding import EMBEDDING_BYTES, EMBEDDING_DIM
from edge.gallery.errors import GalleryCorrupt, GalleryError, GallerySchemaError

SCHEMA_VERSION = 3
# SQLite header field marking the file as an edge gallery ("EGAL"), so `file` and we can tell.
APPLICATION_ID = 0x4547414C

# The templates table and its index; `scale` is the template's own scale (from the cohort), and
# `threshold_factor` (NULL: 1) what negative feedback tightened its threshold by.
TEMPLATES_TABLE = (
    f"""CREATE TABLE templates (
        id          INTEGER PRIMARY KEY,
        identity_id TEXT NOT NULL REFERENCES identities(identity_id),
        embedding   BLOB NOT NULL CHECK (length(embedding) = {EMBEDDING_BYTES}),
        quality     REAL,
        source      TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        scale       REAL NOT NULL CHECK (scale > 0),
        threshold_factor REAL CHECK (threshold_factor > 0 AND threshold_factor <= 1)
    )""",
    "CREATE INDEX templates_by_identity ON templates(identity_id)",
)

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
    *TEMPLATES_TABLE,
    f"PRAGMA application_id = {APPLICATION_ID}",
)

# A schema-2 file gains the factor column in place (NULL for every template it holds).
ADD_FACTOR_COLUMN = (
    "ALTER TABLE templates ADD COLUMN threshold_factor REAL CHECK (threshold_factor > 0 AND threshold_factor <= 1)"
)

_V1_COLUMNS = {
    "meta": {"key", "value"},
    "identities": {"identity_id", "name", "enrolled_at"},
    "templates": {"id", "identity_id", "embedding", "quality", "source", "created_at"},
}
_V1_META_KEYS = {"schema_version", "embedding_dim", "model_id", "model_sha256", "created_at"}
# Per schema version: the columns of each table, and the meta keys.
_V2_META_KEYS = _V1_META_KEYS | {"cohort_id", "cohort_sha256"}
_LAYOUTS = {
    "1": (_V1_COLUMNS, _V1_META_KEYS),
    "2": ({**_V1_COLUMNS, "templates": _V1_COLUMNS["templates"] | {"scale"}}, _V2_META_KEYS),
    str(SCHEMA_VERSION): (
        {**_V1_COLUMNS, "templates": _V1_COLUMNS["templates"] | {"scale", "threshold_factor"}},
        _V2_META_KEYS,
    ),
}


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
    meta = _meta(conn, path)
    layout = _LAYOUTS.get(meta.get("schema_version", ""))
    if layout is None:
        raise GallerySchemaError(
            f"gallery {path} has schema version {meta.get('schema_version')}; this software reads versions "
            f"{', '.join(_LAYOUTS)}"
        )
    columns, keys = layout
    for table, expected in columns.items():
        found = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if found != expected:
            raise GallerySchemaError(
                f"gallery {path}: table '{table}' has columns {sorted(found)}, expected {sorted(expected)}"
            )
    missing = keys - meta.keys()
    if missing:
        raise GallerySchemaError(f"gallery {path}: meta lacks {sorted(missing)}")
    if meta["embedding_dim"] != str(EMBEDDING_DIM):
        raise GallerySchemaError(
            f"gallery {path} holds {meta['embedding_dim']}-d embeddings; this software uses {EMBEDDING_DIM}"
        )
    return meta


def _meta(conn: sqlite3.Connection, path: str) -> dict[str, str]:
    try:
        return dict(conn.execute("SELECT key, value FROM meta"))
    except sqlite3.OperationalError as e:  # no such table
        raise GallerySchemaError(f"gallery {path}: {e}") from e
