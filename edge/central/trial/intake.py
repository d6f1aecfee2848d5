"""What the collector accepts: one MQTT message in, one validated payload out, or a refusal.

Kept apart from the MQTT client (edge/central/trial/collector.py) so the rules can be read, tested
and timed on their own. A refusal is final: the collector sets the message aside as a `DeadLetter` (stored
in the trial database, counted by reason), acknowledges it (a redelivery would be refused again)
and goes on.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

from pydantic import ValidationError

from edge.link.payloads import (
    TOPIC_PREFIX,
    ConfigReported,
    MatchEvent,
    Payload,
    StatsPayload,
    StatusPayload,
    escape_control,
)

# Topic suffix (after edge/<site>/<device_id>/) -> the model its payload must validate with.
MODELS: dict[str, type[Payload]] = {
    "match": MatchEvent,
    "stats": StatsPayload,
    "status": StatusPayload,
    "config/reported": ConfigReported,
}

SUFFIXES = tuple(MODELS)

# Why a message was refused; the keys of `IntakeCounts.refused`.
MALFORMED = "malformed"  # not UTF-8 JSON
SCHEMA = "schema"  # JSON, but not the topic's payload model
MISMATCH = "mismatch"  # the payload's site/device is not the topic's
UNKNOWN_DEVICE = "unknown_device"  # not in the collector's device list (when it has one)
TOPIC = "topic"  # a topic the collector does not handle
DATABASE = "database"  # valid, yet the database refused to store it (a value no column holds)
REASONS = (MALFORMED, SCHEMA, MISMATCH, UNKNOWN_DEVICE, TOPIC, DATABASE)

EXCERPT = 300
"""How many characters of a set-aside payload are kept: enough to see what it was."""


class Refused(Exception):
    """A message the collector will not store; `reason` is one of REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def printable(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, each control character written as an escape (`\\x00`),
    so that a hostile message can be stored and shown anywhere."""
    cut = text[:limit] + ("..." if len(text) > limit else "")
    return escape_control(cut)


@dataclass(frozen=True)
class DeadLetter:
    """A message the collector will never store, set aside with the reason (one of REASONS)."""

    topic: str
    payload: bytes
    reason: str
    detail: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()

    def excerpt(self) -> str:
        return printable(self.payload[: EXCERPT * 4].decode("utf-8", "backslashreplace"), EXCERPT)


@dataclass(frozen=True)
class Source:
    """Where a message came from, read from its topic."""

    site: str
    device_id: str
    suffix: str


def source_of(topic: str) -> Source:
    """`edge/<site>/<device>/<suffix>` -> Source; raises `Refused(TOPIC)` for anything else."""
    parts = topic.split("/", 3)
    if len(parts) != 4 or parts[0] != TOPIC_PREFIX or parts[3] not in MODELS:
        raise Refused(TOPIC, f"topic {topic!r} is not edge/<site>/<device>/{{{','.join(SUFFIXES)}}}")
    return Source(parts[1], parts[2], parts[3])


def decode(topic: str, payload: bytes, devices: frozenset[str] | None = None) -> Payload:
    """Validate one message with its topic's model; raises `Refused` saying why not.

    `devices`: the `<site>/<device_id>` pairs known to the trial; None accepts any device.
    """
    source = source_of(topic)
    if devices is not None and f"{source.site}/{source.device_id}" not in devices:
        raise Refused(UNKNOWN_DEVICE, f"{source.site}/{source.device_id} is not in the device list ({topic})")
    try:
        message = MODELS[source.suffix].model_validate_json(payload)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        reason = MALFORMED if any(err["type"] == "json_invalid" for err in errors) else SCHEMA
        first = errors[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        raise Refused(reason, f"{topic}: {where}: {first['msg']} ({len(errors)} error(s))") from None
    said = (getattr(message, "site"), getattr(message, "device_id"))  # noqa: B009 (every model in MODELS has them)
    if said != (source.site, source.device_id):
        raise Refused(MISMATCH, f"{topic} carries a payload of {said[0]}/{said[1]}")
    return message


@dataclass
class IntakeCounts:
    """Running totals for the periodic log line and the benchmark. Owned by the writer thread."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    decode_s: float = 0.0  # JSON parse + validation, summed
    write_s: float = 0.0  # database writes and commits, summed
    batches: int = 0
    store_outages: int = 0  # times the database became unreachable
    unacknowledged: int = 0  # received, not stored when the collector stopped: the broker sends them again

    def line(self) -> str:
        """One log line: `received 10 stored 8 duplicates 1 set aside 1 (schema 1)`, then any
        database outages and messages left unacknowledged."""
        refused = sum(self.refused.values())
        why = ", ".join(f"{k} {v}" for k, v in sorted(self.refused.items()) if v)
        text = f"received {self.received} stored {self.stored} duplicates {self.duplicates} set aside {refused}"
        text += f" ({why})" if why else ""
        if self.store_outages:
            text += f"; trial database unavailable {self.store_outages} time(s)"
        if self.unacknowledged:
            text += f"; {self.unacknowledged} not stored, left unacknowledged for the broker to send again"
        return text

    def as_dict(self) -> dict[str, object]:
        return {
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "refused": dict(self.refused),
            "decode_s": self.decode_s,
            "write_s": self.write_s,
            "batches": self.batches,
            "store_outages": self.store_outages,
            "unacknowledged": self.unacknowledged,
        }
