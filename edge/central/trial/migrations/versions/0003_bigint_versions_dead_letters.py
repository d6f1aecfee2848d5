"""Config versions in 64 bits, and the dead-letter table.

Config versions are Unix milliseconds (1.8e12), beyond PostgreSQL's 32-bit INTEGER: the first
ordinary `edge fleet config set` stopped a PostgreSQL collector. `dead_letters` keeps what the
collector can never store, so a report can say what it lacks.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from edge.central.trial.schema import DEAD_LETTER_TOPIC, UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_VERSIONS = ("version", "answered_version")


def upgrade() -> None:
    with op.batch_alter_table("configs") as batch:  # SQLite: batch mode copies the table
        for column in _VERSIONS:
            batch.alter_column(column, type_=sa.BigInteger, existing_type=sa.Integer)
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("topic", sa.String(DEAD_LETTER_TOPIC), nullable=False),
        sa.Column("payload_sha256", sa.String(64), nullable=False),
        sa.Column("payload_bytes", sa.BigInteger, nullable=False),
        sa.Column("excerpt", sa.Text, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("topic", "payload_sha256", name="uq_dead_letters_message"),
    )
    op.create_index("ix_dead_letters_received", "dead_letters", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_dead_letters_received", "dead_letters")
    op.drop_table("dead_letters")
    with op.batch_alter_table("configs") as batch:
        for column in _VERSIONS:
            batch.alter_column(column, type_=sa.Integer, existing_type=sa.BigInteger)
