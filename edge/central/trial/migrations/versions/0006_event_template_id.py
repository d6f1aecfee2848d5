"""Match events keep the id of the template that matched (negative feedback ties a false alert to it).

Nullable: events stored before, and events from devices before template ids, have none.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("template_id", sa.String(32), nullable=True))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite 3.35+ has it): batch mode would copy `events`, which the
    # verdicts' foreign key forbids while the table is dropped.
    op.drop_column("events", "template_id")
