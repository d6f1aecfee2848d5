"""A trial report as one JSON-ready dict: the figures per trial, site, device, day and device-day,
the settings in force in each period, the missing windows and the headline sentence.

Every renderer (Markdown, CSV, HTML) reads this dict only, so they cannot disagree.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from edge.central.trial.report.data import Alert, Selection, TrialData, Window
from edge.central.trial.report.figures import Figures, figures
from edge.central.trial.report.periods import expected_per_window, periods
from edge.central.trial.terms import stage_of

NOTES = (
    "Scans are tracks that passed the quality gate and were embedded; alerts are the match events received.",
    "Verdicts (South Wales Police's vocabulary): the operator adjudicates each alert as a true alert or a "
    "false alert, or leaves it not adjudicated; where an officer engaged the person, the alert is then "
    "confirmed true or confirmed false. Verdicts are appended: the latest of each stage counts. An alert "
    "with no adjudication counts as not adjudicated (no verdict: not even an engagement outcome).",
    "Precision before engagement = true alerts / (true alerts + false alerts), over the adjudicated alerts; "
    "precision after engagement = confirmed true / (confirmed true + confirmed false), over the engaged "
    "alerts; false alerts per 1,000 scans counts the alerts adjudicated false. Intervals are 95% Wilson "
    "score intervals.",
    "Predicted false alerts = sum over windows of scans x the expected false alerts per 1,000 scans "
    "the device reported (from its FMR and gallery size) / 1,000; it assumes nobody scanned is enrolled. "
    "The figure is for a mixed crowd (the false match rate over all impostor comparisons of the calibration "
    "data); the bound beside it assumes every passer-by shares the enrolled people's group, the worst one "
    "(its within-group false match rate). Devices before the two figures reported the bound only: their "
    "scans count as unknown for the mixed figure.",
    "Messages set aside were received but could never be stored (not a valid message, or refused by "
    "the database): what they held is unknown; the collector's dead_letters table keeps an excerpt of each.",
    "A device is listed as silent when its last window received ends more than two window lengths before "
    "the end of the report (the selection's last day, or now): it stopped, or its messages were not stored.",
    "Missing windows were sent by a device (its window sequence has a hole) but never received: "
    "their scans are unknown and are not counted as zero. Each run of them is one row, dated by the day it began.",
)


def latest_by_stage(data: TrialData) -> dict[str, dict[str, str]]:
    """Event id -> stage -> the outcome of its latest verdict of that stage (ties: the one given last)."""
    latest: dict[str, dict[str, str]] = defaultdict(dict)
    for v in sorted(data.verdicts, key=lambda v: v.at):
        latest[v.event_id][stage_of(v.outcome)] = v.outcome
    return dict(latest)


def _span(
    data: TrialData, selection: Selection, windows: list[Window], alerts: list[Alert]
) -> tuple[datetime, datetime]:
    """The time the report covers: the selected days or period, else from the first to the last record."""
    stamps = [w.start for w in windows] + [w.end for w in windows] + [a.ts for a in alerts]
    first = min(stamps, default=datetime.now(UTC))
    last = max(stamps, default=first)
    start, end = selection.bounds()
    return start or first, end or last


SILENT_AFTER_WINDOWS = 2
"""A device is silent once this many of its window lengths passed without a window received."""


def _silent(windows: list[Window], until: datetime) -> list[dict[str, Any]]:
    """Devices whose last window received ends more than `SILENT_AFTER_WINDOWS` window lengths
    before `until`: a stopped device, or a collector that stored nothing since."""
    last: dict[tuple[str, str], Window] = {}
    for w in windows:
        key = (w.site, w.device_id)
        if key not in last or w.end > last[key].end:
            last[key] = w
    return [
        {
            "site": site,
            "device_id": device,
            "last_window_end": w.end.isoformat(),
            "silent_h": round((until - w.end).total_seconds() / 3600, 2),
        }
        for (site, device), w in sorted(last.items())
        if until - w.end > SILENT_AFTER_WINDOWS * max(w.end - w.start, timedelta(seconds=1))
    ]


def _until(selection: Selection, now: datetime) -> datetime:
    end = selection.bounds()[1]
    return now if end is None else min(now, end)


def build_report(data: TrialData, selection: Selection, now: datetime | None = None) -> dict[str, Any]:
    """Compute everything; the figures of a group never include anything outside the selection.
    `now`: when the report is made (default: the clock), the end of a selection still running."""
    windows = [w for w in data.windows if selection.takes(w.site, w.device_id, w.day, w.start)]
    alerts = [a for a in data.alerts if selection.takes(a.site, a.device_id, a.day, a.ts)]
    missing = [m for m in data.missing if selection.takes(m.site, m.device_id, m.day, m.after)]
    outcomes = latest_by_stage(data)
    all_periods = periods(data.statuses)
    expected = expected_per_window(windows, all_periods)

    def group(key: Callable[[Any], Any]) -> dict[Any, Figures]:
        ws: dict[Any, list[Window]] = defaultdict(list)
        als: dict[Any, list[Alert]] = defaultdict(list)
        gaps: Counter[Any] = Counter()
        for m in missing:
            gaps[key(m)] += m.count
        for w in windows:
            ws[key(w)].append(w)
        for a in alerts:
            als[key(a)].append(a)
        keys = sorted(set(ws) | set(als) | set(gaps))
        return {k: figures(ws[k], als[k], outcomes, expected, gaps[k]) for k in keys}

    trial = figures(windows, alerts, outcomes, expected, sum(m.count for m in missing))
    set_aside = [
        {
            "reason": s.reason,
            "count": s.count,
            "first": s.first.isoformat(),
            "last": s.last.isoformat(),
            "example": s.example,
        }
        for s in data.set_aside
    ]
    silent = _silent(windows, _until(selection, now or datetime.now(UTC)))
    first, last = _span(data, selection, windows, alerts)
    devices = {(w.site, w.device_id) for w in windows} | {(a.site, a.device_id) for a in alerts}
    return {
        "selection": selection.to_json(),
        "covers": {"from": first.isoformat(), "to": last.isoformat()},
        "headline": headline(trial) + _unknowns(set_aside, silent),
        "trial": trial.to_json(),
        "sites": [{"site": k, **f.to_json()} for k, f in group(lambda r: r.site).items()],
        "devices": [
            {"site": k[0], "device_id": k[1], **f.to_json()} for k, f in group(lambda r: (r.site, r.device_id)).items()
        ],
        "days": [{"day": k.isoformat(), **f.to_json()} for k, f in group(lambda r: r.day).items()],
        "rows": [
            {"site": k[0], "device_id": k[1], "day": k[2].isoformat(), **f.to_json()}
            for k, f in group(lambda r: (r.site, r.device_id, r.day)).items()
        ],
        "periods": [p.to_json() for p in all_periods if (p.site, p.device_id) in devices and p.overlaps(first, last)],
        "missing_windows": [
            {
                "site": m.site,
                "device_id": m.device_id,
                "day": m.day.isoformat(),
                "first": m.first,
                "last": m.last,
                "count": m.count,
            }
            for m in sorted(missing, key=lambda m: (m.site, m.device_id, m.day, m.first))
        ],
        "set_aside": set_aside,
        "silent_devices": silent,
        "notes": list(NOTES),
    }


def _unknowns(set_aside: list[dict[str, Any]], silent: list[dict[str, Any]]) -> str:
    """What the figures cannot include, said in the headline so that no reader misses it."""
    text = ""
    if set_aside:
        text += f"; {plural(sum(s['count'] for s in set_aside), 'message')} set aside, never stored"
    if silent:
        text += f"; {plural(len(silent), 'device')} silent at the end (nothing received since)"
    return text


def plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _per(scans: int, alerts: int) -> str:
    x = scans / alerts
    return f"{x:,.0f}" if x >= 10 else f"{x:.1f}"


def _precision(rate: dict[str, Any], of: str) -> str:
    """ "55.6% (26.7-81.1%, 5 of 9 adjudicated)", or "unknown (none adjudicated)"."""
    if rate["value"] is None:
        return f"unknown (none {of})"
    lo, hi = rate["ci95"]
    return f"{100 * rate['value']:.1f}% ({100 * lo:.1f}-{100 * hi:.1f}%, {rate['k']:,} of {rate['n']:,} {of})"


def headline(f: Figures) -> str:
    """ "N faces scanned, A alerts: T true alerts, F false alerts, U not adjudicated (V without a
    verdict); E engaged: C confirmed true, D confirmed false; 1 alert per X scans; precision before
    engagement P (lo-hi, k of n adjudicated), after engagement Q (...)", then the missing windows."""
    text = (
        f"{plural(f.scans, 'face')} scanned, {plural(f.alerts, 'alert')}: {plural(f.true_alert, 'true alert')}, "
        f"{plural(f.false_alert, 'false alert')}, {f.not_adjudicated:,} not adjudicated "
        f"({f.no_verdict:,} without a verdict); {f.engaged:,} engaged: {f.confirmed_true:,} confirmed true, "
        f"{f.confirmed_false:,} confirmed false; "
    )
    if not f.alerts:
        text += "no alert; "
    elif f.scans:
        text += f"1 alert per {_per(f.scans, f.alerts)} scans; "
    else:  # alerts without their windows: the scans are not known yet, not zero
        text += "no scans counted yet; "
    text += f"precision before engagement {_precision(f.precision_before_engagement(), 'adjudicated')}, "
    text += f"after engagement {_precision(f.precision_after_engagement(), 'engaged')}"
    if f.missing_windows:
        text += f"; {plural(f.missing_windows, 'window')} missing, their scans unknown"
    return text
