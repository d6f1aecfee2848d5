"""Read a selection of the trial store into `TrialData` (the store's read API, nothing else)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from edge.central.trial.queries import TrialFilter
from edge.central.trial.report.data import (
    Alert,
    MissingWindows,
    Selection,
    SetAside,
    Status,
    TrialData,
    Verdict,
    Window,
)
from edge.central.trial.store import TrialStore

_VERSIONS = ("software", "detector_model_id", "embedder_model_id", "gallery_version")


def _filter(selection: Selection, with_time: bool = True) -> TrialFilter:
    """The store's filter for a selection of whole UTC days."""
    start = end = None
    if with_time and selection.first_day is not None:
        start = datetime.combine(selection.first_day, time(), UTC)
    if with_time and selection.last_day is not None:
        end = datetime.combine(selection.last_day + timedelta(days=1), time(), UTC)
    return TrialFilter(start, end, selection.site, selection.device_id)


def _set_aside(letters: list[Any]) -> list[SetAside]:
    """Dead letters per reason: how many, when, and the first one's detail."""
    by_reason: dict[str, list[Any]] = {}
    for letter in letters:
        by_reason.setdefault(letter["reason"], []).append(letter)
    return [
        SetAside(reason, len(ls), ls[0]["received_at"], ls[-1]["received_at"], ls[0]["detail"])
        for reason, ls in sorted(by_reason.items())
    ]


def load(store: TrialStore, selection: Selection) -> TrialData:
    """The selection's windows, alerts and latest verdicts; its devices' whole status history (what
    was in force when the selection begins may have been reported before it) and every gap (a gap
    shows only between two windows received, which may lie outside the selection's days)."""
    f, everything = _filter(selection), _filter(selection, with_time=False)
    return TrialData(
        windows=[
            Window(
                r["window_id"],
                r["site"],
                r["device_id"],
                r["window_start"],
                r["window_end"],
                r["frames"],
                r["scans"],
                r["quality_rejected"],
                r["matches"],
            )
            for r in store.windows(f)
        ],
        alerts=[Alert(r["event_id"], r["site"], r["device_id"], r["ts"]) for r in store.events(f)],
        verdicts=[Verdict(r["event_id"], r["outcome"], r["by"], r["at"], r["note"]) for r in store.verdicts(f)],
        statuses=[
            Status(r["site"], r["device_id"], r["ts"], {k: r[k] for k in _VERSIONS}, dict(r["details"]))
            for r in store.statuses(everything)
        ],
        missing=[
            MissingWindows(m.site, m.device_id, *m.window_ids(), m.count, m.after.date())
            for m in store.missing_windows(everything)
        ],
        set_aside=_set_aside(store.dead_letters(f)),
    )
