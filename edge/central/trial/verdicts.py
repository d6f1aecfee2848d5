"""A day's verdict log as CSV (`event_id,outcome,by,note[,at]`), read and checked before any is stored.

`outcome` is an adjudication (true_alert, false_alert, not_adjudicated) or, where an officer
engaged the person, an engagement outcome (confirmed_true, confirmed_false); a word of the
earlier vocabulary is a bad line that names the new words.

A log is taken whole or not at all: every bad line (unknown outcome, no name, a time without a
zone, an event id the trial does not know) is listed with its line number, and nothing is
stored, so an operator fixes the file and imports it again without duplicating half of it.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

from edge.central.trial.store import TrialStore, VerdictInput
from edge.central.trial.terms import VERDICT_COLUMNS as COLUMNS
from edge.central.trial.terms import TrialStoreError, outcome_problem

OPTIONAL = ("at",)


def _time(text: str) -> datetime:
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if at.tzinfo is None:
        raise ValueError(f"time {text!r} has no time zone (write e.g. 2026-03-02T14:05:00Z)")
    return at


def _verdict(row: dict[str, str | None]) -> VerdictInput:
    """One row as a verdict; ValueError says what is wrong with it."""
    values = {k: (v or "").strip() for k, v in row.items() if k is not None}
    if None in row:
        raise ValueError(f"{len(row[None] or [])} value(s) beyond the header's columns")  # type: ignore[index]
    if not values["event_id"]:
        raise ValueError("no event_id")
    if problem := outcome_problem(values["outcome"]):
        raise ValueError(problem)
    if not values["by"]:
        raise ValueError("no name in 'by' (who checked the alert)")
    at = _time(values["at"]) if values.get("at") else None
    return VerdictInput(values["event_id"], values["outcome"], values["by"], values["note"] or None, at)


Problem = tuple[int, str]  # a line number and what is wrong there


def read_verdicts(path: Path) -> tuple[list[VerdictInput], list[int], list[Problem]]:
    """The file's good verdicts, each one's line number, and the problems found."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in COLUMNS if c not in header]
            unknown = [c for c in header if c not in COLUMNS + OPTIONAL]
            if missing or unknown:
                raise TrialStoreError(
                    f"{path}: line 1: the header must be {','.join(COLUMNS)}[,at]"
                    + (f"; missing {', '.join(missing)}" if missing else "")
                    + (f"; unknown {', '.join(unknown)}" if unknown else "")
                )
            verdicts: list[VerdictInput] = []
            lines: list[int] = []
            problems: list[Problem] = []
            for row in reader:
                try:
                    verdicts.append(_verdict(row))
                    lines.append(reader.line_num)
                except ValueError as e:
                    problems.append((reader.line_num, str(e)))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise TrialStoreError(f"cannot read the verdict log {path}: {e}") from None
    return verdicts, lines, problems


def import_verdicts(store: TrialStore, path: Path) -> int:
    """Store every verdict of the file, or none: returns how many were stored."""
    verdicts, lines, problems = read_verdicts(path)
    unknown = store.unknown_events(v.event_id for v in verdicts)
    problems += [
        (n, f"no alert with event id {v.event_id}")
        for v, n in zip(verdicts, lines, strict=True)
        if v.event_id in unknown
    ]
    if problems:
        listed = "; ".join(f"line {n}: {what}" for n, what in sorted(problems))
        raise TrialStoreError(f"{path}: nothing imported, fix these lines: {listed}")
    if not verdicts:
        raise TrialStoreError(f"{path}: no verdicts in the file")
    store.add_verdicts(verdicts)
    return len(verdicts)
