"""The field-trial database's tables (SQLAlchemy Core), one schema for SQLite and PostgreSQL.

Every table that holds device traffic has a unique key taken from the message itself (`window_id`,
`event_id`, or the device and time of a status or config report), so storing a message twice
changes nothing. Verdicts are the only table without one: they are append-only history.
The Alembic revisions in `migrations/` create these tables; a test checks that the
migrated database and this module agree.
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

from edge.central.trial.terms import OUTCOMES


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC time on both backends (SQLite has no time zones: stored naive UTC)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive time {value!r}: the trial store keeps UTC times only")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


DEAD_LETTER_TOPIC = 512
"""The longest topic a dead letter keeps (longer ones are cut)."""

metadata = sa.MetaData()

devices = sa.Table(
    "devices",
    metadata,
    sa.Column("site", sa.String(64), primary_key=True),
    sa.Column("device_id", sa.String(64), primary_key=True),
    sa.Column("first_seen", UtcDateTime, nullable=False),
)


def _device_columns() -> list[sa.Column[str]]:
    """`site` and `device_id`, a reference to `devices`: every message belongs to one device."""
    return [
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
    ]


def _device_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["site", "device_id"], ["devices.site", "devices.device_id"], name=f"fk_{table}_device"
    )


windows = sa.Table(
    "windows",
    metadata,
    sa.Column("window_id", sa.String(200), primary_key=True),
    *_device_columns(),
    sa.Column("boot_id", sa.String(200), nullable=True),  # None: an id not `<boot id>-<sequence>`
    sa.Column("sequence", sa.Integer, nullable=True),
    sa.Column("window_start", UtcDateTime, nullable=False),
    sa.Column("window_end", UtcDateTime, nullable=False),
    sa.Column("frames", sa.BigInteger, nullable=False),
    sa.Column("frames_dropped", sa.BigInteger, nullable=False),
    sa.Column("detections", sa.BigInteger, nullable=False),
    sa.Column("scans", sa.BigInteger, nullable=False),
    sa.Column("quality_rejected", sa.BigInteger, nullable=False),
    sa.Column("matches", sa.BigInteger, nullable=False),
    sa.Column("messages_dropped", sa.BigInteger, nullable=False),
    sa.Column("fps", sa.Float, nullable=False),
    sa.Column("latency_ms_p50", sa.Float, nullable=True),
    sa.Column("latency_ms_p95", sa.Float, nullable=True),
    sa.Column("received_at", UtcDateTime, nullable=False),
    _device_fk("windows"),
    sa.Index("ix_windows_device_start", "site", "device_id", "window_start"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("event_id", sa.String(32), primary_key=True),
    *_device_columns(),
    sa.Column("ts", UtcDateTime, nullable=False),
    sa.Column("track_id", sa.BigInteger, nullable=False),
    sa.Column("identity_id", sa.String(128), nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("template_threshold", sa.Float, nullable=True),  # None: sent before per-template thresholds
    sa.Column("template_id", sa.String(32), nullable=True),  # None: sent before template ids
    sa.Column("metric", sa.String(16), nullable=False),
    sa.Column("model_id", sa.String(128), nullable=False),
    sa.Column("gallery_version", sa.String(128), nullable=False),
    sa.Column("window_id", sa.String(200), nullable=False),  # the window may arrive later: no FK
    sa.Column("received_at", UtcDateTime, nullable=False),
    _device_fk("events"),
    sa.Index("ix_events_device_ts", "site", "device_id", "ts"),
    sa.Index("ix_events_received_at", "received_at"),  # the console: newest alerts, alerts since
)

statuses = sa.Table(
    "statuses",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    *_device_columns(),
    sa.Column("ts", UtcDateTime, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(200), nullable=True),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("software", sa.String(128), nullable=False),
    sa.Column("detector_model_id", sa.String(128), nullable=False),
    sa.Column("embedder_model_id", sa.String(128), nullable=False),
    sa.Column("embedder_sha256", sa.String(64), nullable=False),
    sa.Column("gallery_version", sa.String(128), nullable=True),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    _device_fk("statuses"),
    # a retained status comes again on every subscribe: the same device, time and state is one report
    sa.UniqueConstraint("site", "device_id", "ts", "state", name="uq_statuses_report"),
)

configs = sa.Table(
    "configs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    *_device_columns(),
    sa.Column("ts", UtcDateTime, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),  # Unix milliseconds: beyond 32 bits
    sa.Column("status", sa.String(16), nullable=True),
    sa.Column("answered_version", sa.BigInteger, nullable=True),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("received_at", UtcDateTime, nullable=False),
    _device_fk("configs"),
    sa.UniqueConstraint("site", "device_id", "ts", "version", name="uq_configs_report"),
)

verdicts = sa.Table(
    "verdicts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(32), sa.ForeignKey("events.event_id", name="fk_verdicts_event"), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("by", sa.String(128), nullable=False),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.CheckConstraint(f"outcome IN ({', '.join(repr(o) for o in OUTCOMES)})", name="ck_verdicts_outcome"),
    sa.Index("ix_verdicts_event", "event_id"),
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("topic", sa.String(DEAD_LETTER_TOPIC), nullable=False),
    sa.Column("payload_sha256", sa.String(64), nullable=False),
    sa.Column("payload_bytes", sa.BigInteger, nullable=False),
    sa.Column("excerpt", sa.Text, nullable=False),  # the payload's start, control characters escaped
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    # a redelivered message is one message: the same topic and bytes are set aside once
    sa.UniqueConstraint("topic", "payload_sha256", name="uq_dead_letters_message"),
    sa.Index("ix_dead_letters_received", "received_at"),
)
"""Messages the collector can never store (refused by intake or by the database), kept so that a
report can say what it is missing and why; no foreign key: the device may be unknown."""

UNIQUE_KEYS: dict[str, tuple[str, ...]] = {
    "devices": ("site", "device_id"),
    "windows": ("window_id",),
    "events": ("event_id",),
    "statuses": ("site", "device_id", "ts", "state"),
    "configs": ("site", "device_id", "ts", "version"),
    "dead_letters": ("topic", "payload_sha256"),
}
"""The columns that make a stored message the same message (what de-duplication compares)."""
