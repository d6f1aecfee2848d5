"""What the `edge trial` commands need before the database libraries are loaded.

The `central` extra (SQLAlchemy, Alembic, psycopg) is not on a device, yet every command's parser
is built there (`edge --help`, `edge run`): the parsers and `edge.cli` import only this.
"""

from __future__ import annotations

from edge.errors import OperatorError

OUTCOMES = ("confirmed", "false_alert", "not_checked")
"""What an operator found when checking an alert."""

VERDICT_COLUMNS = ("event_id", "outcome", "by", "note")
"""A verdict log's CSV columns; `at` (ISO 8601 with a zone) may follow."""


class TrialStoreError(OperatorError):
    """The trial store cannot do what was asked (bad URL, unknown event, bad verdict)."""


class StoreRefused(TrialStoreError):
    """The database refused a value in a batch (a type, a range, a constraint), as opposed to
    being unreachable: the batch will never be stored as it is, and retrying it is pointless."""
