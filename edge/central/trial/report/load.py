"""Read a selection of the trial store into `TrialData` (the store's read API, nothing else)."""

from __future__ import annotations

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


def _filters(selection: Selection, with_time: bool = True) -> list[TrialFilter]:
    """The store's filters for a selection: one, or one per device of its `devices`."""
    start, end = selection.bounds() if with_time else (None, None)
    if selection.devices is None:
        return [TrialFilter(start, end, selection.site, selection.device_id)]
    return [TrialFilter(start, end, *d.split("/", 1)) for d in selection.devices]


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
    wanted, everything = _filters(selection), _filters(selection, with_time=False)
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
            for f in wanted
            for r in store.windows(f)
        ],
        alerts=[Alert(r["event_id"], r["site"], r["device_id"], r["ts"]) for f in wanted for r in store.events(f)],
        verdicts=[
            Verdict(r["event_id"], r["outcome"], r["by"], r["at"], r["note"]) for f in wanted for r in store.verdicts(f)
        ],
        statuses=[
            Status(r["site"], r["device_id"], r["ts"], {k: r[k] for k in _VERSIONS}, dict(r["details"]))
            for f in everything
            for r in store.statuses(f)
        ],
        missing=[
            MissingWindows(m.site, m.device_id, *m.window_ids(), m.count, m.after.date(), m.after)
            for f in everything
            for m in store.missing_windows(f)
        ],
        set_aside=_set_aside(store.dead_letters(TrialFilter(*selection.bounds()))),
    )
