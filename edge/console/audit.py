"""The console's audit: every login, failed login, logout, adjudication, refusal and user change,
appended to one table and never changed; admins read and export it."""

from __future__ import annotations

import csv
import io
from typing import Any

import sqlalchemy as sa

from edge.central.trial.report.text import inert_cell
from edge.console.schema import audit
from edge.link.payloads import utc_now

COLUMNS = ("id", "at", "actor", "address", "action", "target", "outcome", "detail")


def record(
    engine: sa.Engine,
    action: str,
    outcome: str,
    actor: str | None = None,
    address: str | None = None,
    target: str | None = None,
    detail: str | None = None,
) -> None:
    """Append one entry; `outcome` is ok, refused or failed."""
    row = {"at": utc_now(), "actor": actor, "address": address, "action": action, "target": target}
    with engine.begin() as connection:
        connection.execute(audit.insert(), {**row, "outcome": outcome, "detail": detail})


def entries(engine: sa.Engine, limit: int | None = None) -> list[dict[str, Any]]:
    """The newest entries first."""
    query = sa.select(audit).order_by(audit.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(query)]


def as_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([inert_cell(row[c]) for c in COLUMNS])
    return out.getvalue()
