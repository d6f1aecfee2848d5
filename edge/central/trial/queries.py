"""What the trial report reads: windows, events, verdicts, status and config history, gaps.

Every read takes one `TrialFilter` (time range, site, device) and returns plain rows (mappings of
column name to value, times as aware UTC), ordered by device and time. The verdict reads of one
alert or a list of alerts (`verdict_history`, `latest_verdicts`) are for a screen that shows them.
Each verdict row carries its `stage` (`adjudication` or `engagement`, from its outcome).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from edge.central.trial.schema import UtcDateTime, configs, dead_letters, events, statuses, verdicts, windows
from edge.central.trial.terms import ADJUDICATION, ENGAGEMENT, OUTCOMES, stage_of

Row = sa.RowMapping

STAGE = sa.case({o: stage_of(o) for o in OUTCOMES}, value=verdicts.c.outcome).label("stage")
"""A verdict's stage, computed in SQL from its outcome (the table stores the outcome only)."""


@dataclass(frozen=True)
class TrialFilter:
    """Which part of the trial: `start` <= time < `end`, one site, one device (None: all)."""

    start: datetime | None = None
    end: datetime | None = None
    site: str | None = None
    device_id: str | None = None

    def where(self, table: sa.Table, time: sa.ColumnElement[Any]) -> list[sa.ColumnElement[bool]]:
        """The conditions on `table` whose time column is `time`."""
        conditions: list[sa.ColumnElement[bool]] = []
        if self.start is not None:
            conditions.append(time >= self.start)
        if self.end is not None:
            conditions.append(time < self.end)
        if self.site is not None:
            conditions.append(table.c.site == self.site)
        if self.device_id is not None:
            conditions.append(table.c.device_id == self.device_id)
        return conditions


ALL = TrialFilter()


@dataclass(frozen=True)
class LatestVerdicts:
    """The verdicts that count for one alert: its latest adjudication and its latest engagement
    outcome (None: none given)."""

    adjudication: Row | None
    engagement: Row | None


def _latest_first(*partition: sa.ColumnElement[Any]) -> sa.ColumnElement[int]:
    """1 for the latest verdict of each `partition` (the latest time; a tie: the one recorded last)."""
    return sa.func.row_number().over(partition_by=partition, order_by=(verdicts.c.at.desc(), verdicts.c.id.desc()))


@dataclass(frozen=True)
class MissingWindows:
    """Windows `first`..`last` of one boot that the device numbered and the centre never
    received: their counts are unknown, never zero.

    `after` is the end of the last window received before them and `before` the start of the
    first one after them: the gap lies between (a day for the report).
    """

    site: str
    device_id: str
    boot_id: str
    first: int
    last: int
    after: datetime
    before: datetime

    @property
    def count(self) -> int:
        return self.last - self.first + 1

    def window_ids(self) -> tuple[str, str]:
        """The first and last missing window's id, as the device numbers them (`<boot>-<000001>`)."""
        return f"{self.boot_id}-{self.first:06d}", f"{self.boot_id}-{self.last:06d}"


class TrialQueries:
    """The read side of `TrialStore` (mixed in; needs `self.engine`)."""

    engine: sa.Engine

    def _rows(self, query: sa.Select[Any]) -> list[Row]:
        with self.engine.connect() as connection:
            return list(connection.execute(query).mappings())

    def windows(self, f: TrialFilter = ALL) -> list[Row]:
        """Counter windows that start in the range."""
        t = windows
        return self._rows(
            sa.select(t).where(*f.where(t, t.c.window_start)).order_by(t.c.site, t.c.device_id, t.c.window_start)
        )

    def events(self, f: TrialFilter = ALL) -> list[Row]:
        """Alerts seen in the range."""
        t = events
        return self._rows(sa.select(t).where(*f.where(t, t.c.ts)).order_by(t.c.site, t.c.device_id, t.c.ts))

    def verdicts(self, f: TrialFilter = ALL, history: bool = False) -> list[Row]:
        """Verdicts on the alerts seen in the range, with the alert's site and device and the
        verdict's `stage`: the latest per event and stage (the ones that count), or every one
        ever given with `history`."""
        ranked = (
            sa.select(
                verdicts,
                STAGE,
                events.c.site,
                events.c.device_id,
                events.c.ts,
                _latest_first(verdicts.c.event_id, STAGE).label("rank"),
            )
            .join(events, events.c.event_id == verdicts.c.event_id)
            .where(*f.where(events, events.c.ts))
            .subquery()
        )
        query = sa.select(*(c for c in ranked.c if c.name != "rank"))
        if not history:
            query = query.where(ranked.c.rank == 1)
        return self._rows(query.order_by(ranked.c.site, ranked.c.device_id, ranked.c.ts, ranked.c.at, ranked.c.id))

    def verdict_history(self, event_id: str) -> list[Row]:
        """Every verdict ever given on one alert, both stages, oldest first (by time, then as
        recorded), each with its `stage`: who said what, and when. Empty for an alert without."""
        return self._rows(
            sa.select(verdicts, STAGE).where(verdicts.c.event_id == event_id).order_by(verdicts.c.at, verdicts.c.id)
        )

    def latest_verdicts(self, event_ids: Iterable[str]) -> dict[str, LatestVerdicts]:
        """For each of these alerts, the latest adjudication and the latest engagement outcome
        (each row with its `stage`; None where none was given): what counts, in one query for a
        page of alerts. Every id asked for has an entry, one without verdicts (or unknown) too."""
        wanted = list(dict.fromkeys(event_ids))
        latest: dict[str, dict[str, Row]] = {e: {} for e in wanted}
        if wanted:
            ranked = (
                sa.select(verdicts, STAGE, _latest_first(verdicts.c.event_id, STAGE).label("rank"))
                .where(verdicts.c.event_id.in_(wanted))
                .subquery()
            )
            query = sa.select(*(c for c in ranked.c if c.name != "rank")).where(ranked.c.rank == 1)
            for row in self._rows(query):
                latest[row["event_id"]][row["stage"]] = row
        return {e: LatestVerdicts(v.get(ADJUDICATION), v.get(ENGAGEMENT)) for e, v in latest.items()}

    def statuses(self, f: TrialFilter = ALL) -> list[Row]:
        """Status reports (state, versions, details) in the range: uptime and versions in force."""
        t = statuses
        return self._rows(sa.select(t).where(*f.where(t, t.c.ts)).order_by(t.c.site, t.c.device_id, t.c.ts, t.c.id))

    def configs(self, f: TrialFilter = ALL) -> list[Row]:
        """Config reports in the range: which configuration version was in force when."""
        t = configs
        return self._rows(sa.select(t).where(*f.where(t, t.c.ts)).order_by(t.c.site, t.c.device_id, t.c.ts, t.c.id))

    def dead_letters(self, f: TrialFilter = ALL) -> list[Row]:
        """Messages set aside (never stored) that arrived in the time range, oldest first. Their
        site and device are not trusted (the message may be anything): filtered by time only."""
        t = dead_letters
        when = TrialFilter(f.start, f.end).where(t, t.c.received_at)
        return self._rows(sa.select(t).where(*when).order_by(t.c.received_at, t.c.id))

    def missing_windows(self, f: TrialFilter = ALL) -> list[MissingWindows]:
        """Per device and boot, each run of sequences absent between two windows received (in the
        range), one row per run: memory and time follow the windows received, not the gap."""
        t = windows
        boot = (t.c.site, t.c.device_id, t.c.boot_id)
        ordered = (
            sa.select(
                *boot,
                t.c.sequence,
                t.c.window_start,
                sa.func.lag(t.c.sequence).over(partition_by=boot, order_by=t.c.sequence).label("previous"),
                sa.func.lag(t.c.window_end, type_=UtcDateTime)
                .over(partition_by=boot, order_by=t.c.sequence)
                .label("previous_end"),
            )
            .where(t.c.sequence.is_not(None), *f.where(t, t.c.window_start))
            .subquery()
        )
        o = ordered.c
        query = (
            sa.select(o.site, o.device_id, o.boot_id, o.previous, o.sequence, o.previous_end, o.window_start)
            .where(o.sequence > o.previous + 1)
            .order_by(o.site, o.device_id, o.boot_id, o.sequence)
        )
        with self.engine.connect() as connection:
            return [
                MissingWindows(site, device, boot_id, previous + 1, sequence - 1, after, before)
                for site, device, boot_id, previous, sequence, after, before in connection.execute(query)
            ]
