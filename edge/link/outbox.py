"""Durable outbox: a message is on disk before MQTT sees it, and leaves only when acknowledged.

Delivery is at least once: a row is deleted when the broker acknowledges it (QoS 1 PUBACK);
a crash or power cut before that resends it at the next start, and receivers de-duplicate by
message id (the event id or stats window id).

Durability: WAL with `synchronous=FULL`, so every committed `put` is fsynced to the WAL
before it returns and survives a power cut. `NORMAL` is faster but may roll back the last
commits after a power cut, i.e. lose a match event that was already counted. Events are a
few per minute, so one fsync each is cheap.

Threads: one connection shared under a lock (`check_same_thread=False`). The loop thread
puts and the MQTT publisher thread reads and marks; both are short statements at a low rate,
and one lock keeps the in-memory in-flight set consistent with the table without cross-thread
transactions.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edge.link.errors import OutboxError

log = logging.getLogger(__name__)

# Written to the file header so another application's SQLite file is never taken for ours.
APPLICATION_ID = 0x45444F42  # "EDOB"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    topic      TEXT NOT NULL,
    payload    TEXT NOT NULL,
    qos        INTEGER NOT NULL CHECK (qos IN (1, 2)),
    retain     INTEGER NOT NULL CHECK (retain IN (0, 1)),
    created_at REAL NOT NULL,
    failed     TEXT
)
"""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One message waiting for its acknowledgement."""

    message_id: str
    topic: str
    payload: str
    qos: int
    retain: bool
    created_at: float  # Unix time (s) the row was put


class Outbox:
    """Messages on their way to the broker, in a SQLite file.

    A row is *pending* until `mark_delivered` deletes it. While the publisher has handed it
    to the MQTT client it is also *in flight* (kept in memory only): `pending()` skips it, and
    a restart (new `Outbox`) or `release_in_flight()` makes it eligible again. A row the
    broker refused for good is marked failed: kept on disk for inspection, no longer sent.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._db = self._open(self.path)

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        """Open and check the file before writing anything to it, so a wrong file is kept intact."""
        if not path.parent.is_dir():
            raise OutboxError(f"outbox {path}: directory {path.parent} does not exist")
        try:
            # Owner only (it holds identity ids and times); SQLite gives its -wal and -shm
            # files the mode of the database file.
            os.close(os.open(path, os.O_RDONLY | os.O_CREAT, 0o600))
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except (sqlite3.Error, OSError) as e:
            raise OutboxError(f"cannot open outbox {path}: {e}") from e
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            app_id = db.execute("PRAGMA application_id").fetchone()[0]
            if tables and app_id != APPLICATION_ID:
                raise OutboxError(
                    f"{path} is a SQLite file of another application (tables: "
                    f"{', '.join(sorted(tables))}), not an edge outbox: give the outbox its "
                    "own path"
                )
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise OutboxError(
                    f"outbox {path} is corrupt ({check}); it was left untouched: move it aside "
                    "to start with an empty outbox"
                )
            for file in (path, *(path.with_name(path.name + end) for end in ("-wal", "-shm"))):
                if file.exists():
                    file.chmod(0o600)  # made by an older version
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            db.execute(_SCHEMA)
        except sqlite3.DatabaseError as e:
            db.close()
            raise OutboxError(
                f"outbox {path} is not a usable SQLite database ({e}); it was left untouched: "
                "move it aside to start with an empty outbox"
            ) from e
        except OutboxError:
            db.close()
            raise
        return db

    def put(self, topic: str, payload_json: str, *, message_id: str, qos: int = 1, retain: bool = False) -> bool:
        """Store a message durably; False if `message_id` is already pending (nothing changes).

        Only QoS 1 and 2: a QoS 0 message has no acknowledgement to delete the row on.
        """
        if qos not in (1, 2):
            raise ValueError(f"outbox messages need QoS 1 or 2, not {qos}")
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO outbox (message_id, topic, payload, qos, retain, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (message_id, topic, payload_json, qos, int(retain), time.time()),
            )
            return cur.rowcount == 1

    def pending(self, limit: int) -> list[OutboxRow]:
        """Up to `limit` rows to send, oldest first, skipping rows in flight and failed rows."""
        with self._lock:
            rows = self._db.execute(
                "SELECT message_id, topic, payload, qos, retain, created_at FROM outbox"
                " WHERE failed IS NULL ORDER BY seq LIMIT ?",
                (limit + len(self._in_flight),),
            ).fetchall()
            fresh = [r for r in rows if r[0] not in self._in_flight][:limit]
        return [OutboxRow(m, t, p, q, bool(r), c) for m, t, p, q, r, c in fresh]

    def mark_in_flight(self, message_id: str) -> None:
        """The row was handed to the MQTT client; `pending()` skips it from now on."""
        with self._lock:
            self._in_flight.add(message_id)

    def mark_delivered(self, message_id: str) -> None:
        """The broker acknowledged the row: delete it."""
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE message_id = ?", (message_id,))
            self._in_flight.discard(message_id)

    def mark_failed(self, message_id: str, reason: str) -> None:
        """The broker or client refused the row for good: keep it on disk, stop sending it."""
        with self._lock:
            self._db.execute("UPDATE outbox SET failed = ? WHERE message_id = ?", (reason, message_id))
            self._in_flight.discard(message_id)
        log.error("outbox message %s will not be sent again: %s", message_id, reason)

    def release_in_flight(self) -> None:
        """Make every unacknowledged row pending again (the client that held them is gone)."""
        with self._lock:
            self._in_flight.clear()

    def count_pending(self) -> int:
        """Rows not yet acknowledged, in flight included, failed excluded."""
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM outbox WHERE failed IS NULL").fetchone()
        return row[0]

    def count_failed(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM outbox WHERE failed IS NOT NULL").fetchone()
        return row[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
