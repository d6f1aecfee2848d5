"""What the trial report reads: windows, events, verdicts, status and config history, gaps.

Every read takes one `TrialFilter` (time range, site, device) and returns plain rows (mappings of
column name to value, times as aware UTC), ordered by device and time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from edge.central.trial_schema import configs, events, statuses, verdicts, windows

Row = sa.RowMapping


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
class MissingWindow:
    """A window the device numbered but the centre never received: unknown, never zero.

    `after` is the end of the last window received before it and `before` the start of the
    first one after it: the gap lies between them (a day for the report).
    """

    site: str
    device_id: str
    boot_id: str
    sequence: int
    after: datetime
    before: datetime


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
        """Verdicts on the alerts seen in the range, with the alert's site and device: the latest
        per event (the one that counts), or every one ever given with `history`."""
        latest = sa.func.row_number().over(
            partition_by=verdicts.c.event_id, order_by=(verdicts.c.at.desc(), verdicts.c.id.desc())
        )
        ranked = (
            sa.select(verdicts, events.c.site, events.c.device_id, events.c.ts, latest.label("rank"))
            .join(events, events.c.event_id == verdicts.c.event_id)
            .where(*f.where(events, events.c.ts))
            .subquery()
        )
        query = sa.select(*(c for c in ranked.c if c.name != "rank"))
        if not history:
            query = query.where(ranked.c.rank == 1)
        return self._rows(query.order_by(ranked.c.site, ranked.c.device_id, ranked.c.ts, ranked.c.at, ranked.c.id))

    def statuses(self, f: TrialFilter = ALL) -> list[Row]:
        """Status reports (state, versions, details) in the range: uptime and versions in force."""
        t = statuses
        return self._rows(sa.select(t).where(*f.where(t, t.c.ts)).order_by(t.c.site, t.c.device_id, t.c.ts, t.c.id))

    def configs(self, f: TrialFilter = ALL) -> list[Row]:
        """Config reports in the range: which configuration version was in force when."""
        t = configs
        return self._rows(sa.select(t).where(*f.where(t, t.c.ts)).order_by(t.c.site, t.c.device_id, t.c.ts, t.c.id))

    def missing_windows(self, f: TrialFilter = ALL) -> list[MissingWindow]:
        """Per device and boot, the sequences absent between the first and last window received
        (in the range): each one a window the device counted that the centre does not have."""
        t = windows
        query = (
            sa.select(t.c.site, t.c.device_id, t.c.boot_id, t.c.sequence, t.c.window_start, t.c.window_end)
            .where(t.c.sequence.is_not(None), *f.where(t, t.c.window_start))
            .order_by(t.c.site, t.c.device_id, t.c.boot_id, t.c.sequence)
        )
        return _gaps(self._rows(query))


def _gaps(rows: Sequence[Row]) -> list[MissingWindow]:
    missing = []
    boot = ("site", "device_id", "boot_id")
    for prev, row in zip(rows, rows[1:], strict=False):
        if any(prev[k] != row[k] for k in boot):
            continue
        for sequence in range(prev["sequence"] + 1, row["sequence"]):
            missing.append(
                MissingWindow(
                    row["site"], row["device_id"], row["boot_id"], sequence, prev["window_end"], row["window_start"]
                )
            )
    return missing
