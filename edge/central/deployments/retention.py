"""Retention: a deployment's alerts and verdicts are kept for the period it states after its end,
then reduced to the figures its report needs (`edge trial purge`, and the console daily).

One transaction per deployment stores its report (`report.compute`) in `deployment_figures`
and deletes its alerts (the events of its devices inside its period), their verdicts, its
reference photos and templates, and its watchlist (names and reasons). Kept: the counter windows
and the devices' status and config reports (counts and settings, nobody's data: removing windows
would also read, in the trial report, as windows the devices sent and nobody received), the
deployment's own record, its gallery deliveries and its negative-feedback audit.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from edge.central.deployments.report import compute, events_of, has_ended
from edge.central.deployments.schema import deployments, figures, people
from edge.central.deployments.watchlist import delete_photos, period_end
from edge.central.trial.schema import events, verdicts
from edge.link.payloads import utc_now


def is_due(d: Any, now: datetime) -> bool:
    """Whether the deployment has ended and its retention period after that has passed."""
    return has_ended(d, now) and period_end(d) + timedelta(days=d.retention_days) <= now


def purge(engine: sa.Engine, d: Any, now: datetime) -> bool:
    """Keep the deployment's report and delete what it was made of; False when another purge
    stored it first (nothing done twice). The figures are computed just before the transaction
    (the report's reads have their own connections): a verdict on a months-old alert given in
    between is the one thing that could be lost."""
    report = compute(engine, d, now)
    try:
        with engine.begin() as connection:
            if _purged(connection, d.name):
                return False
            connection.execute(figures.insert(), {"deployment": d.name, "purged_at": now, "figures": report})
            alerts = sa.select(events.c.event_id).where(events_of(d))
            connection.execute(verdicts.delete().where(verdicts.c.event_id.in_(alerts)))
            connection.execute(events.delete().where(events_of(d)))
            delete_photos(connection, d.name)
            connection.execute(people.delete().where(people.c.deployment == d.name))
    except IntegrityError:
        with engine.connect() as connection:
            if _purged(connection, d.name):  # a concurrent purge (the console's, a CLI run) stored it first
                return False
        raise
    return True


def _purged(connection: sa.Connection, name: str) -> bool:
    return connection.execute(sa.select(figures.c.deployment).where(figures.c.deployment == name)).first() is not None


def purge_due(engine: sa.Engine, now: datetime | None = None) -> list[str]:
    """Purge every deployment due at `now` (default: the clock) and not purged yet; the names purged."""
    now = now or utc_now()
    kept = sa.select(figures.c.deployment)
    with engine.connect() as connection:
        candidates = list(connection.execute(sa.select(deployments).where(deployments.c.name.not_in(kept))))
    return [d.name for d in candidates if is_due(d, now) and purge(engine, d, now)]
