"""Verdicts in South Wales Police's vocabulary: adjudication, then engagement.

An operator adjudicates an alert (true_alert, false_alert, not_adjudicated); where an officer
engaged the person, the engagement confirms it (confirmed_true, confirmed_false). The earlier
words become: confirmed -> confirmed_true, false_alert -> false_alert, not_checked ->
not_adjudicated. Every verdict row is kept (history), only its word changes. The words are
written out here, not imported: a revision must say what it did whatever the code says later.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_CHECK = "ck_verdicts_outcome"
_OLD = ("confirmed", "false_alert", "not_checked")
_NEW = ("true_alert", "false_alert", "not_adjudicated", "confirmed_true", "confirmed_false")
_UP = {"confirmed": "confirmed_true", "not_checked": "not_adjudicated"}
# Down is lossy: the earlier words cannot tell an adjudication from an engagement.
_DOWN = {
    "true_alert": "confirmed",
    "confirmed_true": "confirmed",
    "confirmed_false": "false_alert",
    "not_adjudicated": "not_checked",
}

_verdicts = sa.table("verdicts", sa.column("outcome", sa.String(16)))


def _rewrite(words: tuple[str, ...], mapping: dict[str, str]) -> None:
    """Drop the CHECK, rename the outcomes, check against `words` (SQLite: batch mode copies the table)."""
    with op.batch_alter_table("verdicts") as batch:
        batch.drop_constraint(_CHECK, type_="check")
    for old, new in mapping.items():
        op.execute(_verdicts.update().where(_verdicts.c.outcome == old).values(outcome=new))
    with op.batch_alter_table("verdicts") as batch:
        batch.create_check_constraint(_CHECK, f"outcome IN ({', '.join(repr(w) for w in words)})")


def upgrade() -> None:
    _rewrite(_NEW, _UP)


def downgrade() -> None:
    _rewrite(_OLD, _DOWN)
