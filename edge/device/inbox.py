"""Commands from the centre, handed from paho's network thread to the thread that acts on them.

The subscription handler (`Inbox.offer`) runs on paho's thread, which also sends the device's
messages and keepalives: it must return at once, so it only checks the size and queues. A
message over `max_bytes` is refused there, unparsed, and only its size travels on; a flood
beyond `max_items` waiting messages is refused as well (counted, not queued), so neither can
grow the device's memory. Both reach the taker as refusals, so every message sent is answered.

The taker then uses the checks every signed command shares: `signed_object` (JSON, then the
fleet signature, before anything else is read) and `require_newer` (no replay, nothing from the
future); each failure is a `Refused` whose message is the reason reported and audited.

Versions are the centre's Unix time in milliseconds when it issued the command. A version far
ahead of that would stay in force and refuse every later command as stale, for good; so one
more than `CLOCK_SKEW_S` ahead of this device's clock is refused, and one read back from the
state folder that lies beyond it (stored before this check existed) is replaced at start
(`stored_version`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.link.payloads import INT64_MAX
from edge.link.signed import SignatureError, verify

log = logging.getLogger(__name__)

CLOCK_SKEW_S = 24 * 3600
"""How far a command's version may lie ahead of this device's clock (docs/pages/fleet.md, "Remote configuration")."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


STARTED_MS = _now_ms()
"""This process's start on the device's clock, in Unix ms: the version in force that replaces a
stored one from the future."""


@dataclass(frozen=True)
class Received:
    """One message: its bytes, or None with `refused` saying why it was not kept."""

    topic: str
    payload: bytes | None
    refused: str | None = None


class Inbox:
    def __init__(self, max_bytes: int, max_items: int = 64) -> None:
        self.max_bytes = max_bytes
        self.max_items = max_items
        self._items: deque[Received] = deque()
        self._overflow: dict[str, int] = {}  # topic -> messages refused for a full queue
        self._cond = threading.Condition()

    def offer(self, topic: str, payload: bytes) -> None:
        """The `MessageHandler` for `MqttLink.subscribe`: size check and queue, nothing else."""
        with self._cond:
            if len(self._items) >= self.max_items:
                self._overflow[topic] = self._overflow.get(topic, 0) + 1
            elif len(payload) > self.max_bytes:
                self._items.append(
                    Received(topic, None, f"message of {len(payload)} bytes is over the limit of {self.max_bytes}")
                )
            else:
                self._items.append(Received(topic, payload))
            self._cond.notify_all()

    def take(self, timeout: float) -> Received | None:
        """The oldest message, waiting up to `timeout` seconds; None when none came."""
        with self._cond:
            self._cond.wait_for(lambda: self._items or self._overflow, timeout)
            if self._items:
                return self._items.popleft()
            if self._overflow:
                topic = next(iter(self._overflow))
                self._overflow[topic] -= 1
                if not self._overflow[topic]:
                    del self._overflow[topic]
                return Received(topic, None, f"more than {self.max_items} messages were waiting")
            return None


class Refused(Exception):
    """A command from the centre is not carried out; the message is the reason reported."""


def signed_object(received: Received, key: Ed25519PublicKey) -> dict[str, Any]:
    """The JSON object of `received`, once its fleet signature is checked; `Refused` otherwise.

    Nothing of a message is looked at beyond its JSON syntax before its signature holds.
    """
    if received.payload is None:
        raise Refused(received.refused or "no message")
    try:
        message = json.loads(received.payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # RecursionError: nested too deep
        raise Refused(f"not JSON: {e}") from None
    if not isinstance(message, dict):
        raise Refused(f"not a JSON object but {type(message).__name__}")
    try:
        verify(message, key)
    except SignatureError as e:
        raise Refused(str(e)) from None
    return message


def claimed_version(received: Received) -> int | None:
    """The `version` a message says it has, for correlating a refusal (never trusted beyond that)."""
    try:
        version = json.loads(received.payload or b"").get("version")
    except (UnicodeDecodeError, ValueError, AttributeError, RecursionError):
        return None
    valid = isinstance(version, int) and not isinstance(version, bool) and 0 <= version <= INT64_MAX
    return version if valid else None


def require_newer(version: int, in_force: int, what: str) -> None:
    """No replay: a command must carry a version above the one in force, and not from the future."""
    if version <= in_force:
        raise Refused(
            f"{what} version {version} is not newer than the version in force ({in_force}): replayed or stale"
        )
    if _from_the_future(version):
        raise Refused(
            f"{what} version {version} is more than {CLOCK_SKEW_S / 3600:g} h ahead of this device's clock "
            f"({_utc(_now_ms())}; versions are Unix time in ms): refused, as it would make every later one stale; "
            "issue it again with a current version, or set whichever clock is wrong"
        )


def stored_version(version: int, what: str, path: Path) -> int:
    """`version`, read back from `path`, as the one in force; one that `require_newer` would
    refuse as from the future (stored before that check existed) is logged and replaced by
    `STARTED_MS`: every command issued before this start stays refused, the next one gets in."""
    if not _from_the_future(version):
        return version
    log.warning(
        "%s holds %s version %d, more than %g h ahead of this device's clock: ignored; the version in force "
        "is this start's time, %d (%s), so the next %s the centre issues is accepted",
        path,
        what,
        version,
        CLOCK_SKEW_S / 3600,
        STARTED_MS,
        _utc(STARTED_MS),
        what,
    )
    return STARTED_MS


def _from_the_future(version: int) -> bool:
    return version > _now_ms() + CLOCK_SKEW_S * 1000


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
