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
from edge.central.trial.terms import ADJUDICATION, ENGAGEMENT
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
    """The numbers of one group (trial, site, device, day or one device's day).

    Verdicts in two stages (`edge.central.trial.terms`), the latest of each counting: every alert
    is adjudicated true or false by the operator or is not (`not_adjudicated`: so marked, or no
    adjudication given; `no_verdict` of them have no verdict at all); an engaged alert is also
    confirmed true or false.
    """

    windows: int
    missing_windows: int
    uptime_s: float
    frames: int
    scans: int
    quality_rejected: int
    matches_in_windows: int
    alerts: int
    true_alert: int
    false_alert: int
    not_adjudicated: int
    no_verdict: int
    confirmed_true: int
    confirmed_false: int
    predicted_false_alerts: float  # the mixed-crowd expectation
    predicted_false_alerts_bound: float  # if every passer-by were of the worst group's own group
    scans_without_prediction: int

    @property
    def adjudicated(self) -> int:
        return self.true_alert + self.false_alert

    @property
    def engaged(self) -> int:
        return self.confirmed_true + self.confirmed_false

    def precision_before_engagement(self) -> dict[str, Any]:
        """true_alert / (true_alert + false_alert): the operators' adjudications, 95% Wilson interval."""
        return _rate(self.true_alert, self.adjudicated, 1)

    def precision_after_engagement(self) -> dict[str, Any]:
        """confirmed_true / (confirmed_true + confirmed_false): what engaging found, 95% Wilson interval."""
        return _rate(self.confirmed_true, self.engaged, 1)

    def false_alerts_per_1000(self) -> dict[str, Any]:
        """Alerts adjudicated false per 1,000 scans, with the 95% Wilson interval of false alerts / scans."""
        return _rate(self.false_alert, self.scans, 1000)

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
            "true_alert": self.true_alert,
            "false_alert": self.false_alert,
            "not_adjudicated": self.not_adjudicated,
            "no_verdict": self.no_verdict,
            "adjudicated": self.adjudicated,
            "confirmed_true": self.confirmed_true,
            "confirmed_false": self.confirmed_false,
            "engaged": self.engaged,
            "precision_before_engagement": self.precision_before_engagement(),
            "precision_after_engagement": self.precision_after_engagement(),
            "false_alerts_per_1000_scans": self.false_alerts_per_1000(),
            "predicted_false_alerts": self.predicted_false_alerts,
            "predicted_false_alerts_bound": self.predicted_false_alerts_bound,
            "scans_without_prediction": self.scans_without_prediction,
        }


def figures(
    windows: Iterable[Window],
    alerts: Iterable[Alert],
    latest: dict[str, dict[str, str]],
    expected_per_1000: dict[str, FalseAlerts],
    missing_windows: int,
) -> Figures:
    """Sum one group. `latest`: event id -> stage -> the outcome of its latest verdict of that
    stage (an alert absent: no verdict); `expected_per_1000`: the expected false alerts per 1,000
    scans in force for each window id."""
    windows, alerts = list(windows), list(alerts)
    stages = [latest.get(a.event_id, {}) for a in alerts]
    adjudications = [s.get(ADJUDICATION, "not_adjudicated") for s in stages]
    engagements = [s.get(ENGAGEMENT) for s in stages]
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
        true_alert=adjudications.count("true_alert"),
        false_alert=adjudications.count("false_alert"),
        not_adjudicated=adjudications.count("not_adjudicated"),
        no_verdict=stages.count({}),
        confirmed_true=engagements.count("confirmed_true"),
        confirmed_false=engagements.count("confirmed_false"),
        predicted_false_alerts=sum(scans * e.mixed.per_1000 / 1000 for scans, e in predicted if e.mixed.per_1000),
        predicted_false_alerts_bound=sum(scans * e.bound.per_1000 / 1000 for scans, e in predicted if e.bound.per_1000),
        scans_without_prediction=sum(scans for scans, e in predicted if e.mixed.per_1000 is None),
    )
