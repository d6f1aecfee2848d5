"""The report of one deployment: the field-trial report of its devices over its period (the same
figures code, `edge.central.trial.report`), with what the deployment states, its watchlist's
size, its operating point and the changes made during it.

A deployment covers its devices from its start to its end, to the second: the windows that start
in it and the alerts seen in it. Its end is the stated one, or the moment it was ended early.
Once purged (`retention`), its events and verdicts are gone: the report is the one computed at
the purge, kept in `deployment_figures`, with the time of the purge.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from edge.central.deployments import feedback
from edge.central.deployments.schema import deliveries, figures, people
from edge.central.deployments.watchlist import get, period_end
from edge.central.trial.report import build_report
from edge.central.trial.report.data import Selection
from edge.central.trial.report.html import to_html as trial_html
from edge.central.trial.report.load import load
from edge.central.trial.report.text import Table, to_csv, to_json, when
from edge.central.trial.report.text import to_markdown as trial_markdown
from edge.central.trial.schema import events
from edge.central.trial.store import TrialStore
from edge.link.payloads import utc_now

NOTES = (
    "A deployment covers its devices from its start to its end (the moment it was ended, when ended early), "
    "to the second: the windows that start in it and the alerts seen in it.",
    "Listed at any time: the people on its watchlist at some moment of it (a person removed and listed again "
    "counts once); at the end: those listed just before it ended (while it runs: now).",
    "Thresholds in alerts: the match threshold each alert carried, and its template's own threshold where the "
    "device sent one; the settings the devices reported are under 'Settings in force'.",
)


def has_ended(d: Any, now: datetime) -> bool:
    return d.ended_at is not None or d.ends_at <= now


def selection(d: Any) -> Selection:
    """The trial report's selection of a deployment: its devices over its period."""
    return Selection(devices=tuple(sorted(d.devices)), start=d.starts_at, end=period_end(d))


def events_of(d: Any) -> sa.ColumnElement[bool]:
    """The condition on `events` for the deployment's alerts: its devices, inside its period."""
    pairs = [tuple(device.split("/", 1)) for device in d.devices]
    return sa.and_(
        sa.tuple_(events.c.site, events.c.device_id).in_(pairs),
        events.c.ts >= d.starts_at,
        events.c.ts < period_end(d),
    )


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _plain(row: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """A database row as a JSON-ready dict (times as ISO text)."""
    return {k: _iso(v) for k, v in row._mapping.items() if k not in skip}


def _facts(d: Any, now: datetime) -> dict[str, Any]:
    end = period_end(d)
    ended = has_ended(d, now)
    return {
        "name": d.name,
        "purpose": d.purpose,
        "authorised_by": d.authorised_by,
        "created_by": d.created_by,
        "created_at": d.created_at.isoformat(),
        "starts_at": d.starts_at.isoformat(),
        "ends_at": d.ends_at.isoformat(),
        "ended_at": _iso(d.ended_at),
        "ended_early": d.ended_at is not None and d.ended_at < d.ends_at,
        "state": "ended" if ended else ("running" if d.starts_at <= now else "scheduled"),
        "duration_h": round((end - d.starts_at).total_seconds() / 3600, 2),
        "sites": sorted({device.split("/", 1)[0] for device in d.devices}),
        "devices": sorted(d.devices),
        "retention_days": d.retention_days,
        "purge_due_at": (end + timedelta(days=d.retention_days)).isoformat() if ended else None,
    }


def _watchlist(connection: sa.Connection, d: Any, at: datetime) -> dict[str, int]:
    """How many people were listed at some moment of the deployment, and at `at` (its end, or now)."""
    mine = sa.and_(people.c.deployment == d.name, people.c.added_at < period_end(d))
    listed_at = sa.and_(
        people.c.added_at <= at,
        sa.or_(people.c.removed_at.is_(None), people.c.removed_at >= at),
        people.c.expires_at >= at,
    )
    count = sa.select(sa.func.count()).select_from(people)
    return {
        "listed_at_any_time": connection.execute(count.where(mine)).scalar_one(),
        "listed_at_end": connection.execute(count.where(mine, listed_at)).scalar_one(),
    }


def _thresholds(connection: sa.Connection, d: Any) -> list[dict[str, Any]]:
    """The thresholds the deployment's alerts carried, with how many alerts carried each."""
    query = (
        sa.select(events.c.threshold, events.c.template_threshold, sa.func.count().label("alerts"))
        .where(events_of(d))
        .group_by(events.c.threshold, events.c.template_threshold)
        .order_by(events.c.threshold, events.c.template_threshold)
    )
    return [_plain(r) for r in connection.execute(query)]


def _deliveries(connection: sa.Connection, name: str) -> list[dict[str, Any]]:
    """The galleries delivered to the deployment's devices, oldest first."""
    sent = sa.select(deliveries).where(deliveries.c.deployment == name).order_by(deliveries.c.delivered_at)
    return [_plain(r, skip=("id", "deployment")) for r in connection.execute(sent)]


def compute(engine: sa.Engine, d: Any, now: datetime | None = None) -> dict[str, Any]:
    """The report from the records (what a purge keeps): the trial report of the deployment's
    selection, and its own facts beside it."""
    now = now or utc_now()
    chosen = selection(d)
    report = build_report(load(TrialStore(engine), chosen), chosen, now)
    changes = feedback.changes(engine, d.name)  # before ours: one connection at a time (SQLite's lock)
    with engine.connect() as connection:
        extra = {
            "deployment": _facts(d, now),
            "watchlist": _watchlist(connection, d, min(now, period_end(d))),
            "operating_point": {"target_fmr": d.target_fmr, "thresholds": _thresholds(connection, d)},
            "changes": {"deliveries": _deliveries(connection, d.name), "adjustments": changes},
            "purged_at": None,
        }
    return {**report, **extra, "notes": [*NOTES, *report["notes"]]}


def build(engine: sa.Engine, name: str, now: datetime | None = None) -> dict[str, Any]:
    """The report of deployment `name` at `now` (default: the clock); a purged one's is the
    report kept at its purge, saying when."""
    d = get(engine, name)
    with engine.connect() as connection:
        kept = connection.execute(sa.select(figures).where(figures.c.deployment == name)).first()
    if kept is None:
        return compute(engine, d, now)
    purged_at = kept.purged_at.isoformat()
    note = (
        f"Purged at {when(purged_at)}, its retention period over: its alerts, verdicts, photos and watchlist "
        "were deleted; these figures were computed from them then."
    )
    return {**kept.figures, "purged_at": purged_at, "notes": [note, *kept.figures["notes"]]}


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def deployment_tables(report: dict[str, Any]) -> list[Table]:
    """The deployment's own tables, shown before the trial report's."""
    d, w = report["deployment"], report["watchlist"]
    target = report["operating_point"]["target_fmr"]
    facts = [
        ["purpose", d["purpose"]],
        ["authorised by", d["authorised_by"]],
        ["created by", f"{d['created_by']}, {when(d['created_at'])}"],
        ["starts", when(d["starts_at"])],
        ["ends", when(d["ends_at"])],
        ["ended", (when(d["ended_at"]) + (" (early)" if d["ended_early"] else "")) if d["ended_at"] else "not ended"],
        ["state", d["state"]],
        ["duration", f"{d['duration_h']:,.2f} h"],
        ["sites", ", ".join(d["sites"])],
        ["devices", ", ".join(d["devices"])],
        ["people listed at any time", f"{w['listed_at_any_time']:,}"],
        ["people listed at the end", f"{w['listed_at_end']:,}"],
        ["target false match rate", "the embedder's shipped operating point" if target is None else str(target)],
        ["retention", f"{d['retention_days']} days after the end"],
        ["purged", when(report["purged_at"]) if report["purged_at"] else "not yet"],
    ]
    c = report["changes"]
    return [
        (f"Deployment {d['name']}", ["field", "value"], facts),
        (
            "Thresholds in alerts",
            ["threshold", "template threshold", "alerts"],
            [
                [_cell(t["threshold"]), _cell(t["template_threshold"]) or "not sent", f"{t['alerts']:,}"]
                for t in report["operating_point"]["thresholds"]
            ],
        ),
        (
            "Galleries delivered",
            ["delivered", "device", "gallery version", "people", "reason", "by"],
            [
                [when(g["delivered_at"]), g["device"], g["gallery_version"], f"{g['people']:,}", g["reason"]]
                + [g["delivered_by"]]
                for g in c["deliveries"]
            ],
        ),
        (
            "Negative feedback (template changes)",
            ["made", "by", "kind", "person", "template", "factor", "threshold before", "after", "alert", "reverted"],
            [
                [
                    when(a["made_at"]),
                    a["made_by"],
                    a["kind"],
                    a["identity_id"],
                    a["template_id"],
                    _cell(a["factor"]),
                    _cell(a["threshold_before"]),
                    _cell(a["threshold_after"]),
                    _cell(a["event_id"]),
                    f"{when(a['reverted_at'])} by {a['reverted_by']}" if a["reverted_at"] else "",
                ]
                for a in c["adjustments"]
            ],
        ),
    ]


def _title(report: dict[str, Any]) -> str:
    return f"Deployment report: {report['deployment']['name']}"


def to_markdown(report: dict[str, Any]) -> str:
    return trial_markdown(report, _title(report), deployment_tables(report))


def to_html(report: dict[str, Any]) -> str:
    return trial_html(report, _title(report), deployment_tables(report))


FORMATS: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "html": ("text/html; charset=utf-8", to_html),
    "md": ("text/markdown; charset=utf-8", to_markdown),
    "csv": ("text/csv; charset=utf-8", to_csv),  # one row per site, device and day, as the trial's
    "json": ("application/json", to_json),
}
"""Format -> (media type, render): what `edge trial report --deployment` and the console serve."""
