"""The audit log: one JSON line per remote command the device accepted or refused.

`state_dir/audit.jsonl` (0600, appended, never rewritten) answers "who changed what on this
device, and what was turned away": time, topic kind, version, outcome, reason and the keys
named. Values are never written (a setting may be a secret), nor any message body.

Bounded, because anyone who can publish to the device's topics can make it refuse commands
without end: a line that would take the file past `MAX_BYTES` first renames it to
`audit.jsonl.1` (replacing the one before), so the card holds at most twice `MAX_BYTES` of
audit, always the newest lines.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)

AUDIT_LOG = "audit.jsonl"
MAX_BYTES = 1024 * 1024  # about 4,000 lines of refusals
_REASON_CHARS = 500


class AuditLog:
    """Appends to `path`; safe from several threads (one `write` per line, under a lock)."""

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES) -> None:
        self.path = path
        self.rotated = path.with_name(path.name + ".1")
        self._max_bytes = max_bytes
        self._lock = threading.Lock()

    def append(
        self,
        kind: str,
        outcome: str,
        *,
        version: int | None = None,
        reason: str | None = None,
        keys: Iterable[str] = (),
    ) -> None:
        """One line; a disk that refuses it is logged, never raised: an unwritable audit log
        must not stop the device from refusing a bad command."""
        entry = {
            "ts": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
            "kind": kind,
            "version": version,
            "outcome": outcome,
            "reason": None if reason is None else reason[:_REASON_CHARS],
            "keys": sorted(keys),
        }
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        with self._lock:
            try:
                self._rotate(len(line))
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as e:
                log.warning("cannot append to the audit log %s: %s", self.path, e.strerror or e)

    def _rotate(self, adding: int) -> None:
        """The log to `audit.jsonl.1` when `adding` bytes would take it past the limit."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size and size + adding > self._max_bytes:
            os.replace(self.path, self.rotated)
            log.info("audit log %s reached %d bytes: now %s, and a new one started", self.path, size, self.rotated.name)
