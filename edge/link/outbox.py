"""Durable outbox: a message is on disk before MQTT sees it, and leaves only when acknowledged.

Delivery is at least once: a row is deleted when the broker acknowledges it (QoS 1 PUBACK);
a crash or power cut before that resends it at the next start, and receivers de-duplicate by
message id (the event id or stats window id).

Durability: WAL with `synchronous=FULL`, so every committed `put` is fsynced to the WAL
before it returns and survives a power cut. `NORMAL` is faster but may roll back the last
commits after a power cut, i.e. lose a match event that was already counted. Events are a
few per minute, so one fsync each is cheap.

A full disk (or any write the disk refuses) is a state, not a loss: the message is kept in a
bounded memory queue instead (`memory_limit`), from where `pending()` still hands it to the
publisher, so with the broker up it is sent and forgotten at its PUBACK; `disk_error` says why
(the device reports it as `degraded`). Every later write, and `retry_disk()`, first tries to
move the queue to disk, in order. A message that finds the memory queue full too is dropped
and counted in `dropped`, with an error logged; one that is in memory when the process ends is
lost. The WAL is kept small (checkpoints every `_WAL_PAGES` pages and truncated to
`_WAL_BYTES`) so that it cannot fill a small state disk on its own.

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

MEMORY_LIMIT = 1000  # messages kept in memory while the disk refuses them (about 1 MB)
_WAL_PAGES = 32  # checkpoint every 32 pages (128 KB) instead of SQLite's 1,000 (4 MB)
_WAL_BYTES = 128 * 1024  # and truncate the WAL back to this after a checkpoint
_LOW_SPACE = 2 * _WAL_BYTES  # less free space than this is a full disk to the outbox

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


_INSERT = "INSERT OR IGNORE INTO outbox (message_id, topic, payload, qos, retain, created_at) VALUES (?, ?, ?, ?, ?, ?)"


def _columns(row: OutboxRow) -> tuple[str, str, str, int, int, float]:
    return row.message_id, row.topic, row.payload, row.qos, int(row.retain), row.created_at


def free_bytes(path: Path) -> int:
    """Space left to unprivileged writers on the filesystem that holds `path`."""
    fs = os.statvfs(path.parent)
    return fs.f_bavail * fs.f_frsize


def disk_trouble(path: Path, error: sqlite3.OperationalError) -> str:
    """What a refused write means, naming a full filesystem (SQLite may say only "disk I/O error")."""
    free = free_bytes(path)
    if "full" in str(error) or free < _LOW_SPACE:
        return f"{error}: the filesystem of {path.parent} is full ({free // 1024} KB free); free space on it"
    return f"{error}: check the filesystem of {path.parent}"


class Outbox:
    """Messages on their way to the broker, in a SQLite file.

    A row is *pending* until `mark_delivered` deletes it. While the publisher has handed it
    to the MQTT client it is also *in flight* (kept in memory only): `pending()` skips it, and
    a restart (new `Outbox`) or `release_in_flight()` makes it eligible again. A row the
    broker refused for good is marked failed: kept on disk for inspection, no longer sent.
    Rows the disk refused are pending too, in memory (see the module docstring).
    """

    def __init__(self, path: str | Path, memory_limit: int = MEMORY_LIMIT) -> None:
        self.path = Path(path)
        self.memory_limit = memory_limit
        self.dropped = 0  # messages lost because the disk and the memory queue were both full
        self.disk_error: str | None = None  # why the disk refused the last write; None: it is fine
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._memory: dict[str, OutboxRow] = {}  # refused by the disk, oldest first
        self._delivered: set[str] = set()  # acknowledged rows the disk refused to delete
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
            db.execute(f"PRAGMA wal_autocheckpoint={_WAL_PAGES}")
            db.execute(f"PRAGMA journal_size_limit={_WAL_BYTES}")
            db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            db.execute(_SCHEMA)
        except sqlite3.OperationalError as e:  # the disk, not the file: never advise moving it
            db.close()
            raise OutboxError(
                f"cannot write outbox {path}: {disk_trouble(path, e)}; the outbox and its pending messages are kept"
            ) from e
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
        """Store a message durably; False if `message_id` is already pending (nothing changes)
        or if it had to be dropped (the disk refused it and the memory queue is full).

        Only QoS 1 and 2: a QoS 0 message has no acknowledgement to delete the row on.
        """
        if qos not in (1, 2):
            raise ValueError(f"outbox messages need QoS 1 or 2, not {qos}")
        row = OutboxRow(message_id, topic, payload_json, qos, retain, time.time())
        with self._lock:
            if message_id in self._memory:
                return False
            self._save_memory()  # older refused messages first, to keep the order
            if not self._memory:
                try:
                    cur = self._db.execute(_INSERT, _columns(row))
                    return cur.rowcount == 1
                except sqlite3.OperationalError as e:
                    self._refused(e)
            if len(self._memory) >= self.memory_limit:
                self.dropped += 1
                log.error(
                    "message %s to %s dropped: the disk refuses writes (%s) and %d messages already wait in "
                    "memory (%d dropped so far)",
                    message_id,
                    topic,
                    self.disk_error,
                    len(self._memory),
                    self.dropped,
                )
                return False
            self._memory[message_id] = row
            return True

    def retry_disk(self) -> None:
        """Try again to write what the disk refused (messages kept in memory, deletions)."""
        with self._lock:
            self._save_memory()

    def _save_memory(self) -> None:
        """Move the memory queue and the deletions owed to disk, all or nothing. Lock held.

        With nothing owed, a refusing disk counts as recovered once it has room again."""
        if not self._memory and not self._delivered:
            if self.disk_error is not None and free_bytes(self.path) >= _LOW_SPACE:
                log.warning("the disk of outbox %s has room again", self.path)
                self.disk_error = None
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("DELETE FROM outbox WHERE message_id = ?", [(m,) for m in self._delivered])
                self._db.executemany(_INSERT, [_columns(r) for r in self._memory.values()])
                self._db.execute("COMMIT")
            except sqlite3.Error:
                if self._db.in_transaction:  # SQLite rolls back by itself on a full disk
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as e:
            self._refused(e)
            return
        log.warning("the disk takes writes again: %d message(s) moved from memory to the outbox", len(self._memory))
        self._memory.clear()
        self._delivered.clear()
        self.disk_error = None

    def _refused(self, error: sqlite3.OperationalError) -> None:
        if self.disk_error is None:
            log.error(
                "outbox %s: the disk refuses writes (%s); messages wait in memory (up to %d) and are still sent",
                self.path,
                error,
                self.memory_limit,
            )
        self.disk_error = disk_trouble(self.path, error)

    def pending(self, limit: int) -> list[OutboxRow]:
        """Up to `limit` rows to send, oldest first, skipping rows in flight and failed rows."""
        with self._lock:
            rows = self._db.execute(
                "SELECT message_id, topic, payload, qos, retain, created_at FROM outbox"
                " WHERE failed IS NULL ORDER BY seq LIMIT ?",
                (limit + len(self._in_flight) + len(self._delivered),),
            ).fetchall()
            on_disk = [OutboxRow(m, t, p, q, bool(r), c) for m, t, p, q, r, c in rows]
            skip = self._in_flight | self._delivered
            return [r for r in (*on_disk, *self._memory.values()) if r.message_id not in skip][:limit]

    def mark_in_flight(self, message_id: str) -> None:
        """The row was handed to the MQTT client; `pending()` skips it from now on."""
        with self._lock:
            self._in_flight.add(message_id)

    def mark_delivered(self, message_id: str) -> None:
        """The broker acknowledged the row: delete it (from memory, if the disk had refused it)."""
        with self._lock:
            self._in_flight.discard(message_id)
            if self._memory.pop(message_id, None) is not None:
                return
            try:
                self._db.execute("DELETE FROM outbox WHERE message_id = ?", (message_id,))
            except sqlite3.OperationalError as e:
                self._refused(e)
                self._delivered.add(message_id)

    def mark_failed(self, message_id: str, reason: str) -> None:
        """The broker or client refused the row for good: keep it on disk, stop sending it."""
        with self._lock:
            if self._memory.pop(message_id, None) is None:
                # On a disk that refuses this the row stays in flight: not resent before a restart.
                self._db.execute("UPDATE outbox SET failed = ? WHERE message_id = ?", (reason, message_id))
            self._in_flight.discard(message_id)
        log.error("outbox message %s will not be sent again: %s", message_id, reason)

    def release_in_flight(self) -> None:
        """Make every unacknowledged row pending again (the client that held them is gone)."""
        with self._lock:
            self._in_flight.clear()

    def count_pending(self) -> int:
        """Messages not yet acknowledged (on disk or in memory), in flight included, failed excluded."""
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM outbox WHERE failed IS NULL").fetchone()
            return row[0] - len(self._delivered) + len(self._memory)

    def count_failed(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM outbox WHERE failed IS NOT NULL").fetchone()
        return row[0]

    def close(self) -> None:
        """Close the file, after a last try to save what waits in memory (else it is lost)."""
        with self._lock:
            self._save_memory()
            if self._memory:
                log.error(
                    "%d message(s) the disk refused (%s) are lost at exit: %s",
                    len(self._memory),
                    self.disk_error,
                    ", ".join(self._memory),
                )
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
