"""Match events keep the threshold of the template that matched (per-template thresholds).

Nullable: events stored before, and events from devices before per-template thresholds, have none.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("template_threshold", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:  # SQLite: batch mode copies the table
        batch.drop_column("template_threshold")
