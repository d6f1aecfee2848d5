"""What the `edge trial` commands need before the database libraries are loaded.

The `central` extra (SQLAlchemy, Alembic, psycopg) is not on a device, yet every command's parser
is built there (`edge --help`, `edge run`): the parsers and `edge.cli` import only this.

The verdict vocabulary is South Wales Police's for live facial recognition: the operator
adjudicates an alert first; then, where an officer engages the person, the engagement confirms
it true or false. Each stage keeps its own history; the latest verdict of each stage counts.
"""

from __future__ import annotations

from edge.errors import OperatorError

ADJUDICATION = "adjudication"
ENGAGEMENT = "engagement"

ADJUDICATIONS = ("true_alert", "false_alert", "not_adjudicated")
"""What the operator found on seeing an alert, before anyone engaged the person."""

ENGAGEMENTS = ("confirmed_true", "confirmed_false")
"""What an officer who engaged the person found: the alert confirmed true or false."""

OUTCOMES = ADJUDICATIONS + ENGAGEMENTS
"""Every verdict's outcome; its stage follows from it (`stage_of`)."""

RENAMED = {"confirmed": "confirmed_true", "not_checked": "not_adjudicated"}
"""Words of the earlier vocabulary (before revision 0004) and what their stored verdicts became;
`false_alert` kept its name."""

VERDICT_COLUMNS = ("event_id", "outcome", "by", "note")
"""A verdict log's CSV columns; `at` (ISO 8601 with a zone) may follow."""


def stage_of(outcome: str) -> str:
    """The stage an outcome records: `adjudication` or `engagement` (ValueError for any other word)."""
    if outcome in ADJUDICATIONS:
        return ADJUDICATION
    if outcome in ENGAGEMENTS:
        return ENGAGEMENT
    raise ValueError(outcome_problem(outcome))


def outcome_problem(outcome: str) -> str | None:
    """Why `outcome` is no verdict, in one line that names the words to use; None when it is one.
    The CLI, the CSV import and the store all say it the same way."""
    if outcome in OUTCOMES:
        return None
    words = (
        f"use {', '.join(ADJUDICATIONS)} (the operator's adjudication) "
        f"or {', '.join(ENGAGEMENTS)} (after an officer engaged the person)"
    )
    if outcome in RENAMED:
        return f"outcome {outcome!r} is the earlier vocabulary (stored ones became {RENAMED[outcome]}): {words}"
    return f"outcome {outcome!r} is not a verdict: {words}"


class TrialStoreError(OperatorError):
    """The trial store cannot do what was asked (bad URL, unknown event, bad verdict)."""


class StoreRefused(TrialStoreError):
    """The database refused a value in a batch (a type, a range, a constraint), as opposed to
    being unreachable: the batch will never be stored as it is, and retrying it is pointless."""
