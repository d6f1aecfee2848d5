"""The deployment tables: deployments, watchlist people, their sealed photos and templates.

Revision ID: d0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from edge.central.trial.schema import UtcDateTime

revision = "d0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("devices", sa.JSON, nullable=False),
        sa.Column("starts_at", UtcDateTime, nullable=False),
        sa.Column("ends_at", UtcDateTime, nullable=False),
        sa.Column("target_fmr", sa.Float, nullable=True),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("authorised_by", sa.Text, nullable=False),
        sa.Column("retention_days", sa.Integer, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("ended_at", UtcDateTime, nullable=True),
    )
    op.create_table(
        "watchlist_people",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("deployment", sa.String(64), nullable=False),
        sa.Column("identity_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("added_by", sa.String(64), nullable=False),
        sa.Column("added_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("removed_at", UtcDateTime, nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment"], ["deployments.name"], name="fk_watchlist_people_deployment", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("deployment", "identity_id", name="uq_watchlist_people_identity"),
    )
    op.create_table(
        "watchlist_photos",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("person_id", sa.Integer, nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("sealed_photo", sa.LargeBinary, nullable=False),
        sa.Column("sealed_template", sa.LargeBinary, nullable=False),
        sa.Column("quality_rank", sa.Float, nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"], ["watchlist_people.id"], name="fk_watchlist_photos_person", ondelete="CASCADE"
        ),
    )
