"""Template ids on photos; template adjustments (negative feedback); gallery deliveries; the
figures a purged deployment's report keeps.

Revision ID: d0002
Revises: d0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from edge.central.trial.schema import UtcDateTime

revision = "d0002"
down_revision = "d0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("watchlist_photos") as batch:
        batch.add_column(sa.Column("template_id", sa.String(32), nullable=True))
    op.create_table(
        "template_adjustments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("deployment", sa.String(64), nullable=False),
        sa.Column("identity_id", sa.String(128), nullable=False),
        sa.Column("template_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("factor", sa.Float, nullable=True),
        sa.Column("threshold_before", sa.Float, nullable=True),
        sa.Column("threshold_after", sa.Float, nullable=True),
        sa.Column("event_id", sa.String(32), nullable=True),
        sa.Column("figures", sa.JSON, nullable=True),
        sa.Column("made_by", sa.String(64), nullable=False),
        sa.Column("made_at", UtcDateTime, nullable=False),
        sa.Column("reverted_by", sa.String(64), nullable=True),
        sa.Column("reverted_at", UtcDateTime, nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment"], ["deployments.name"], name="fk_template_adjustments_deployment", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_template_adjustments_deployment", "template_adjustments", ["deployment"])
    op.create_table(
        "gallery_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("deployment", sa.String(64), nullable=False),
        sa.Column("device", sa.String(130), nullable=False),
        sa.Column("gallery_version", sa.String(64), nullable=False),
        sa.Column("people", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("delivered_by", sa.String(64), nullable=False),
        sa.Column("delivered_at", UtcDateTime, nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment"], ["deployments.name"], name="fk_gallery_deliveries_deployment", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_gallery_deliveries_device", "gallery_deliveries", ["device", "delivered_at"])
    op.create_table(
        "deployment_figures",
        sa.Column("deployment", sa.String(64), primary_key=True),
        sa.Column("purged_at", UtcDateTime, nullable=False),
        sa.Column("figures", sa.JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment"], ["deployments.name"], name="fk_deployment_figures_deployment", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table("deployment_figures")
    op.drop_index("ix_gallery_deliveries_device", "gallery_deliveries")
    op.drop_table("gallery_deliveries")
    op.drop_index("ix_template_adjustments_deployment", "template_adjustments")
    op.drop_table("template_adjustments")
    with op.batch_alter_table("watchlist_photos") as batch:
        batch.drop_column("template_id")
