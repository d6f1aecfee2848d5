"""What a trial report is computed from: plain records, so the figures do not depend on the store.

The loader (`load.py`) fills these from the trial store; tests and other tools can build them by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any


@dataclass(frozen=True)
class Window:
    """One received counters window (`stats`), de-duplicated by window id."""

    window_id: str
    site: str
    device_id: str
    start: datetime
    end: datetime
    frames: int
    scans: int
    quality_rejected: int
    matches: int

    @property
    def day(self) -> date:
        return self.start.date()


@dataclass(frozen=True)
class Alert:
    """One match event: a question for a person."""

    event_id: str
    site: str
    device_id: str
    ts: datetime

    @property
    def day(self) -> date:
        return self.ts.date()


@dataclass(frozen=True)
class Verdict:
    """One operator verdict; verdicts are append-only, the latest per event counts."""

    event_id: str
    outcome: str
    by: str
    at: datetime
    note: str | None = None


@dataclass(frozen=True)
class Status:
    """One status a device sent: the versions and details (threshold, fmr, ...) in force from `ts`."""

    site: str
    device_id: str
    ts: datetime
    versions: dict[str, Any]
    details: dict[str, Any]


@dataclass(frozen=True)
class MissingWindows:
    """Windows known to exist (their boot's sequence has a hole) that never arrived: scans
    unknown. `first` and `last` are window ids, `count` how many; `day`: when the gap began."""

    site: str
    device_id: str
    first: str
    last: str
    count: int
    day: date
    after: datetime | None = None  # the end of the last window received before the gap


@dataclass(frozen=True)
class SetAside:
    """Messages of one reason that the collector received and could never store (dead letters):
    what they held is unknown to the report."""

    reason: str
    count: int
    first: datetime
    last: datetime
    example: str


@dataclass(frozen=True)
class Selection:
    """What the report covers; None means no limit. Days are UTC and both ends are included.

    `devices` ("site/device") and the period `start` <= time < `end` narrow it further, to the
    second: what a deployment covers (`edge.central.deployments.report`)."""

    first_day: date | None = None
    last_day: date | None = None
    site: str | None = None
    device_id: str | None = None
    devices: tuple[str, ...] | None = None
    start: datetime | None = None
    end: datetime | None = None

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        """The time covered, start <= t < end: the narrower of the days and the period."""
        start = None if self.first_day is None else datetime.combine(self.first_day, time(), UTC)
        end = None if self.last_day is None else datetime.combine(self.last_day + timedelta(days=1), time(), UTC)
        if self.start is not None:
            start = self.start if start is None else max(start, self.start)
        if self.end is not None:
            end = self.end if end is None else min(end, self.end)
        return start, end

    def takes(self, site: str, device_id: str, day: date, at: datetime | None = None) -> bool:
        """Whether a record of this device, day and (when known) time is selected."""
        start, end = self.bounds()
        return (
            (self.site is None or site == self.site)
            and (self.device_id is None or device_id == self.device_id)
            and (self.devices is None or f"{site}/{device_id}" in self.devices)
            and (self.first_day is None or day >= self.first_day)
            and (self.last_day is None or day <= self.last_day)
            and (at is None or ((start is None or at >= start) and (end is None or at < end)))
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "from": None if self.first_day is None else self.first_day.isoformat(),
            "to": None if self.last_day is None else self.last_day.isoformat(),
            "site": self.site,
            "device": self.device_id,
        }
        if self.devices is not None:
            out["devices"] = list(self.devices)
        for key, at in (("start", self.start), ("end", self.end)):
            if at is not None:
                out[key] = at.isoformat()
        return out


@dataclass
class TrialData:
    """Everything a report needs; status history may reach before the selection (what was in force)."""

    windows: list[Window] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)
    missing: list[MissingWindows] = field(default_factory=list)
    set_aside: list[SetAside] = field(default_factory=list)
