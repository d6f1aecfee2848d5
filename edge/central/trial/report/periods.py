"""What was in force on each device, and when: threshold, models, gallery, configuration version.

A device's status carries its versions and operating details; a status may carry only some
details (the gallery watcher reports the gallery's, the remote configuration the threshold's),
so each status updates the state the previous ones left. A period lasts until the next change.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edge.central.trial.report.data import Status, Window
from edge.vision.false_alerts import LEGACY_DETAIL, FalseAlerts

# The status details that carry the expected false alerts (both figures and their intervals).
EXPECTED_DETAILS = (LEGACY_DETAIL, *FalseAlerts.from_details({LEGACY_DETAIL: 0.0}).details())

# What a period is told apart by, and where each comes from (versions or details).
IN_FORCE = (
    ("threshold", "details"),
    ("fmr", "details"),
    ("embedder_model_id", "versions"),
    ("detector_model_id", "versions"),
    ("software", "versions"),
    ("gallery_version", "versions"),
    ("gallery_identities", "details"),
    ("config_version", "details"),
    *((key, "details") for key in EXPECTED_DETAILS),
)


@dataclass(frozen=True)
class Period:
    """One device's settings, in force from `start` until `end` (None: still at the end of the data)."""

    site: str
    device_id: str
    start: datetime
    end: datetime | None
    settings: dict[str, Any]

    def overlaps(self, first: datetime, last: datetime) -> bool:
        return self.start < last and (self.end is None or self.end > first)

    def to_json(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "device_id": self.device_id,
            "from": self.start.isoformat(),
            "to": None if self.end is None else self.end.isoformat(),
            **self.settings,
        }


def periods(statuses: list[Status]) -> list[Period]:
    """Every device's periods, in time order; a status that changes nothing extends the period."""
    by_device: dict[tuple[str, str], list[Status]] = defaultdict(list)
    for s in statuses:
        by_device[(s.site, s.device_id)].append(s)
    out: list[Period] = []
    for (site, device_id), history in sorted(by_device.items()):
        state: dict[str, Any] = {}
        starts: list[tuple[datetime, dict[str, Any]]] = []
        for s in sorted(history, key=lambda s: s.ts):
            sources = {"versions": s.versions, "details": s.details}
            state = {**state, **{k: sources[src][k] for k, src in IN_FORCE if sources[src].get(k) is not None}}
            if not starts or starts[-1][1] != state:
                starts.append((s.ts, state))
        ends: list[datetime | None] = [ts for ts, _ in starts[1:]]
        out += [Period(site, device_id, ts, end, st) for (ts, st), end in zip(starts, [*ends, None], strict=True)]
    return out


def expected_per_window(windows: list[Window], all_periods: list[Period]) -> dict[str, FalseAlerts]:
    """The expected false alerts per 1,000 scans in force for each window (both figures): the
    period in force just before the window's end (a change during a window counts for that window)."""
    by_device: dict[tuple[str, str], list[Period]] = defaultdict(list)
    for p in all_periods:
        by_device[(p.site, p.device_id)].append(p)
    starts = {key: [p.start for p in ps] for key, ps in by_device.items()}
    out: dict[str, FalseAlerts] = {}
    for w in windows:
        key = (w.site, w.device_id)
        i = bisect_left(starts.get(key, []), w.end) - 1
        out[w.window_id] = FalseAlerts.from_details(by_device[key][i].settings if i >= 0 else {})
    return out
