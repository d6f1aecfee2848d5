"""The deployment tables, in the trial database beside the trial's own (their own Alembic history).

A deployment names its sites, devices, period, operating point, purpose, who authorised it and
how long its records are kept; its watchlist is people, each with a reason, who added them and
an expiry, and their reference photos and templates, sealed (`edge.central.deployments.vault`).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from edge.central.trial import store as trial_store
from edge.central.trial.schema import UtcDateTime

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "deployments_alembic_version"

metadata = sa.MetaData()

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("devices", sa.JSON, nullable=False),  # ["site/device", ...]
    sa.Column("starts_at", UtcDateTime, nullable=False),
    sa.Column("ends_at", UtcDateTime, nullable=False),
    sa.Column("target_fmr", sa.Float, nullable=True),  # None: the embedder's shipped operating point
    sa.Column("purpose", sa.Text, nullable=False),
    sa.Column("authorised_by", sa.Text, nullable=False),
    sa.Column("retention_days", sa.Integer, nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("ended_at", UtcDateTime, nullable=True),  # None: not ended (early, or at ends_at)
)

people = sa.Table(
    "watchlist_people",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "deployment",
        sa.String(64),
        sa.ForeignKey("deployments.name", name="fk_watchlist_people_deployment", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("identity_id", sa.String(128), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("added_by", sa.String(64), nullable=False),
    sa.Column("added_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("removed_at", UtcDateTime, nullable=True),
    sa.UniqueConstraint("deployment", "identity_id", name="uq_watchlist_people_identity"),
)

photos = sa.Table(
    "watchlist_photos",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "person_id",
        sa.Integer,
        sa.ForeignKey("watchlist_people.id", name="fk_watchlist_photos_person", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("file_name", sa.String(255), nullable=False),
    sa.Column("sealed_photo", sa.LargeBinary, nullable=False),  # AES-GCM: nonce + ciphertext + tag
    sa.Column("sealed_template", sa.LargeBinary, nullable=False),  # the descriptor, float32, sealed too
    sa.Column("quality_rank", sa.Float, nullable=True),
    sa.Column("template_id", sa.String(32), nullable=True),  # `edge.gallery.content.template_id`: opaque
)

# Negative feedback: one template's threshold tightened (times `factor`) or the template left out
# of the gallery (quarantine), with the alert that prompted it, who made it and who reverted it.
adjustments = sa.Table(
    "template_adjustments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "deployment",
        sa.String(64),
        sa.ForeignKey("deployments.name", name="fk_template_adjustments_deployment", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("identity_id", sa.String(128), nullable=False),
    sa.Column("template_id", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # "tighten" or "quarantine"
    sa.Column("factor", sa.Float, nullable=True),  # tighten: the template's threshold is multiplied by it
    sa.Column("threshold_before", sa.Float, nullable=True),
    sa.Column("threshold_after", sa.Float, nullable=True),
    sa.Column("event_id", sa.String(32), nullable=True),  # the alert adjudicated false that prompted it
    sa.Column("figures", sa.JSON, nullable=True),  # expected misses and false alerts, before and after
    sa.Column("made_by", sa.String(64), nullable=False),
    sa.Column("made_at", UtcDateTime, nullable=False),
    sa.Column("reverted_by", sa.String(64), nullable=True),
    sa.Column("reverted_at", UtcDateTime, nullable=True),
)

# Each gallery sent to a device for a deployment: what the device should report, and why it went.
deliveries = sa.Table(
    "gallery_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "deployment",
        sa.String(64),
        sa.ForeignKey("deployments.name", name="fk_gallery_deliveries_deployment", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("device", sa.String(130), nullable=False),  # "site/device"
    sa.Column("gallery_version", sa.String(64), nullable=False),
    sa.Column("people", sa.Integer, nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),  # start, person removed, expiry, end, feedback, ...
    sa.Column("delivered_by", sa.String(64), nullable=False),
    sa.Column("delivered_at", UtcDateTime, nullable=False),
    sa.Index("ix_gallery_deliveries_device", "device", "delivered_at"),
)

# What the report of a purged deployment keeps: its figures, once its events and verdicts are gone.
figures = sa.Table(
    "deployment_figures",
    metadata,
    sa.Column(
        "deployment",
        sa.String(64),
        sa.ForeignKey("deployments.name", name="fk_deployment_figures_deployment", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("purged_at", UtcDateTime, nullable=False),
    sa.Column("figures", sa.JSON, nullable=False),
)


def migrate(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the deployment tables to the newest schema (created when missing)."""
    trial_store.migrate(engine, revision, MIGRATIONS)
