"""A trial's figures for any group of windows and alerts: counts, rates with their denominators.

Alerts are the match events received (each one can be judged); `matches_in_windows` is the
devices' own counter over the received windows, shown beside it so that lost events show.
Missing windows are counted and listed, never read as zero: their scans are unknown.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from edge.central.trial.report.data import Alert, Window
from edge.vision.false_alerts import FalseAlerts
from edge.vision.rates import wilson


def _rate(k: int, n: int, scale: int) -> dict[str, Any]:
    """k / n times `scale` with its 95% Wilson interval; value and interval None without a denominator."""
    if not n:
        return {"value": None, "k": k, "n": n, "ci95": None}
    lo, hi = wilson(k, n)
    return {"value": scale * k / n, "k": k, "n": n, "ci95": [scale * lo, scale * hi]}


@dataclass(frozen=True)
class Figures:
    """The numbers of one group (trial, site, device, day or one device's day)."""

    windows: int
    missing_windows: int
    uptime_s: float
    frames: int
    scans: int
    quality_rejected: int
    matches_in_windows: int
    alerts: int
    confirmed: int
    false_alerts: int
    not_checked: int
    predicted_false_alerts: float  # the mixed-crowd expectation
    predicted_false_alerts_bound: float  # if every passer-by were of the worst group's own group
    scans_without_prediction: int

    @property
    def checked(self) -> int:
        return self.confirmed + self.false_alerts

    def precision(self) -> dict[str, Any]:
        """Confirmed / (confirmed + false alerts), with its 95% Wilson interval."""
        return _rate(self.confirmed, self.checked, 1)

    def false_alerts_per_1000(self) -> dict[str, Any]:
        """False alerts per 1,000 scans, with the 95% Wilson interval of false alerts / scans."""
        return _rate(self.false_alerts, self.scans, 1000)

    def alerts_per_1000(self) -> float | None:
        return 1000 * self.alerts / self.scans if self.scans else None

    def to_json(self) -> dict[str, Any]:
        return {
            "windows": self.windows,
            "missing_windows": self.missing_windows,
            "uptime_s": self.uptime_s,
            "frames": self.frames,
            "scans": self.scans,
            "quality_rejected": self.quality_rejected,
            "matches_in_windows": self.matches_in_windows,
            "alerts": self.alerts,
            "alerts_per_1000_scans": self.alerts_per_1000(),
            "confirmed": self.confirmed,
            "false_alerts": self.false_alerts,
            "not_checked": self.not_checked,
            "precision": self.precision(),
            "false_alerts_per_1000_scans": self.false_alerts_per_1000(),
            "predicted_false_alerts": self.predicted_false_alerts,
            "predicted_false_alerts_bound": self.predicted_false_alerts_bound,
            "scans_without_prediction": self.scans_without_prediction,
        }


def figures(
    windows: Iterable[Window],
    alerts: Iterable[Alert],
    outcomes: dict[str, str],
    expected_per_1000: dict[str, FalseAlerts],
    missing_windows: int,
) -> Figures:
    """Sum one group. `outcomes`: latest verdict per event id (absent: not checked);
    `expected_per_1000`: the expected false alerts per 1,000 scans in force for each window id."""
    windows, alerts = list(windows), list(alerts)
    verdicts = [outcomes.get(a.event_id, "not_checked") for a in alerts]
    unknown = FalseAlerts.from_details({})
    predicted = [(w.scans, expected_per_1000.get(w.window_id, unknown)) for w in windows]
    return Figures(
        windows=len(windows),
        missing_windows=missing_windows,
        uptime_s=sum((w.end - w.start).total_seconds() for w in windows),
        frames=sum(w.frames for w in windows),
        scans=sum(w.scans for w in windows),
        quality_rejected=sum(w.quality_rejected for w in windows),
        matches_in_windows=sum(w.matches for w in windows),
        alerts=len(alerts),
        confirmed=verdicts.count("confirmed"),
        false_alerts=verdicts.count("false_alert"),
        not_checked=verdicts.count("not_checked"),
        predicted_false_alerts=sum(scans * e.mixed.per_1000 / 1000 for scans, e in predicted if e.mixed.per_1000),
        predicted_false_alerts_bound=sum(scans * e.bound.per_1000 / 1000 for scans, e in predicted if e.bound.per_1000),
        scans_without_prediction=sum(scans for scans, e in predicted if e.mixed.per_1000 is None),
    )
