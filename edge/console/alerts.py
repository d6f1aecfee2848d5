"""The alerts an operator sees: match events of their sites from the trial database, newest
first, with the verdict that counts and whether the matched person's reference photo is kept
(`edge.console.reference`); and the ones stored since a point, for the live stream."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from edge.central.trial.schema import events
from edge.central.trial.store import TrialStore
from edge.console import reference
from edge.console.names import Names
from edge.console.users import User

RECENT = 200
STREAM_OVERLAP = timedelta(seconds=5)
"""Each stream read starts this far before the newest alert it sent: collectors committing in
parallel may store an alert received a moment earlier after a later one. The page drops repeats."""

FALSE_OUTCOMES = ("false_alert", "confirmed_false")  # an operator's or an engaging officer's "not them"
FIELDS = ("event_id", "site", "device_id", "ts", "identity_id", "score", "threshold", "template_threshold")


def _visible(user: User) -> list[sa.ColumnElement[bool]]:
    if user.role == "admin" or user.role == "viewer" and not user.sites:
        return []
    return [events.c.site.in_(user.sites)]


def _as_alert(row: Any, verdicts: dict[str, Any], names: Names | None, photographed: set[str]) -> dict[str, Any]:
    alert = {f: getattr(row, f) for f in FIELDS}
    alert["name"] = None if names is None else names.of(row.identity_id)
    alert["ts"] = row.ts.isoformat()
    alert["received_at"] = row.received_at.isoformat()
    alert["verdict"] = verdicts.get(row.event_id)
    alert["false"] = judged_false(alert["verdict"])
    alert["reference"] = row.event_id in photographed
    return alert


def judged_false(verdict: dict[str, Any] | None) -> bool:
    """Whether the verdict that counts says the alert was wrong: the engagement outcome where
    someone engaged, else the adjudication (negative feedback is offered for these)."""
    if not verdict:
        return False
    counting = verdict["engagement"] or verdict["adjudication"]
    return counting is not None and counting["outcome"] in FALSE_OUTCOMES


def _latest_verdicts(store: TrialStore, event_ids: list[str]) -> dict[str, Any]:
    """What counts for each alert: its latest adjudication and engagement outcome, where given."""

    def shown(row: Any) -> dict[str, Any] | None:
        return (
            None if row is None else {"outcome": row.outcome, "by": row.by, "note": row.note, "at": row.at.isoformat()}
        )

    return {
        event_id: {"adjudication": shown(latest.adjudication), "engagement": shown(latest.engagement)}
        for event_id, latest in store.latest_verdicts(event_ids).items()
    }


def recent(store: TrialStore, user: User, names: Names | None = None, limit: int = RECENT) -> list[dict[str, Any]]:
    """The newest alerts the user may see, newest first."""
    query = sa.select(events).where(*_visible(user)).order_by(events.c.received_at.desc()).limit(limit)
    with store.engine.connect() as connection:
        rows = list(connection.execute(query))
    verdicts = _latest_verdicts(store, [r.event_id for r in rows])
    photographed = reference.with_photo(store.engine, rows)
    return [_as_alert(r, verdicts, names, photographed) for r in rows]


def stored_since(
    store: TrialStore, after: datetime, user: User | None = None, names: Names | None = None
) -> list[dict[str, Any]]:
    """Alerts stored from `after - STREAM_OVERLAP` on, oldest first: those `user` may see, or all."""
    query = sa.select(events).where(events.c.received_at >= after - STREAM_OVERLAP)
    if user is not None:
        query = query.where(*_visible(user))
    with store.engine.connect() as connection:
        rows = list(connection.execute(query.order_by(events.c.received_at, events.c.event_id).limit(RECENT)))
    return [_as_alert(r, {}, names, reference.with_photo(store.engine, rows)) for r in rows]


def site_of(store: TrialStore, event_id: str) -> str | None:
    with store.engine.connect() as connection:
        return connection.execute(sa.select(events.c.site).where(events.c.event_id == event_id)).scalar_one_or_none()


def event(store: TrialStore, event_id: str) -> Any:
    """The stored match event `event_id` (a row), or None."""
    with store.engine.connect() as connection:
        return connection.execute(sa.select(events).where(events.c.event_id == event_id)).first()
