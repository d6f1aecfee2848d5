"""The field-trial tables: devices, windows, events, statuses, configs, verdicts.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from edge.central.trial.schema import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _device() -> list[sa.Column[str]]:
    return [sa.Column("site", sa.String(64), nullable=False), sa.Column("device_id", sa.String(64), nullable=False)]


def _device_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["site", "device_id"], ["devices.site", "devices.device_id"], name=f"fk_{table}_device"
    )


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("site", sa.String(64), primary_key=True),
        sa.Column("device_id", sa.String(64), primary_key=True),
        sa.Column("first_seen", UtcDateTime, nullable=False),
    )
    op.create_table(
        "windows",
        sa.Column("window_id", sa.String(200), primary_key=True),
        *_device(),
        sa.Column("boot_id", sa.String(200), nullable=True),
        sa.Column("sequence", sa.Integer, nullable=True),
        sa.Column("window_start", UtcDateTime, nullable=False),
        sa.Column("window_end", UtcDateTime, nullable=False),
        *(
            sa.Column(name, sa.BigInteger, nullable=False)
            for name in (
                "frames",
                "frames_dropped",
                "detections",
                "scans",
                "quality_rejected",
                "matches",
                "messages_dropped",
            )
        ),
        sa.Column("fps", sa.Float, nullable=False),
        sa.Column("latency_ms_p50", sa.Float, nullable=True),
        sa.Column("latency_ms_p95", sa.Float, nullable=True),
        sa.Column("received_at", UtcDateTime, nullable=False),
        _device_fk("windows"),
    )
    op.create_index("ix_windows_device_start", "windows", ["site", "device_id", "window_start"])
    op.create_table(
        "events",
        sa.Column("event_id", sa.String(32), primary_key=True),
        *_device(),
        sa.Column("ts", UtcDateTime, nullable=False),
        sa.Column("track_id", sa.BigInteger, nullable=False),
        sa.Column("identity_id", sa.String(128), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("metric", sa.String(16), nullable=False),
        sa.Column("model_id", sa.String(128), nullable=False),
        sa.Column("gallery_version", sa.String(128), nullable=False),
        sa.Column("window_id", sa.String(200), nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
        _device_fk("events"),
    )
    op.create_index("ix_events_device_ts", "events", ["site", "device_id", "ts"])
    op.create_table(
        "statuses",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        *_device(),
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
        sa.UniqueConstraint("site", "device_id", "ts", "state", name="uq_statuses_report"),
    )
    op.create_table(
        "configs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        *_device(),
        sa.Column("ts", UtcDateTime, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("answered_version", sa.Integer, nullable=True),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("received_at", UtcDateTime, nullable=False),
        _device_fk("configs"),
        sa.UniqueConstraint("site", "device_id", "ts", "version", name="uq_configs_report"),
    )
    op.create_table(
        "verdicts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("by", sa.String(128), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["events.event_id"], name="fk_verdicts_event"),
        sa.CheckConstraint("outcome IN ('confirmed', 'false_alert', 'not_checked')", name="ck_verdicts_outcome"),
    )
    op.create_index("ix_verdicts_event", "verdicts", ["event_id"])


def downgrade() -> None:
    for index, table in (
        ("ix_verdicts_event", "verdicts"),
        ("ix_events_device_ts", "events"),
        ("ix_windows_device_start", "windows"),
    ):
        op.drop_index(index, table_name=table)
    for table in ("verdicts", "configs", "statuses", "events", "windows", "devices"):
        op.drop_table(table)
