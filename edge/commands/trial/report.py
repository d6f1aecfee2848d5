"""`edge trial report`: a trial's scans, alerts and verdicts, with every denominator, as four files."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from edge.commands.common import CommandError
from edge.commands.trial.verdict import DB_HELP


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day: use YYYY-MM-DD (UTC)") from None


def run(args: argparse.Namespace) -> int:
    # the `central` extra (SQLAlchemy, matplotlib): not on a device, whose `edge` must still start
    from edge.central.trial.report import build_report, write_report
    from edge.central.trial.report.data import Selection
    from edge.central.trial.report.load import load
    from edge.central.trial.store import TrialStore

    if args.first_day and args.last_day and args.first_day > args.last_day:
        raise CommandError(f"--from {args.first_day} is after --to {args.last_day}")
    selection = Selection(args.first_day, args.last_day, args.site, args.device)
    with TrialStore.open(args.db, create=False) as store:
        data = load(store, selection)
    report = build_report(data, selection)
    for path in write_report(report, args.out):
        print(path)
    print(report["headline"])
    return 0


def add_verb(verbs) -> None:
    p = verbs.add_parser("report", help="report.md, .csv, .json and a self-contained .html of a trial")
    p.add_argument("--db", required=True, help=DB_HELP)
    p.add_argument("--from", dest="first_day", type=_day, help="first day included, YYYY-MM-DD (UTC)")
    p.add_argument("--to", dest="last_day", type=_day, help="last day included, YYYY-MM-DD (UTC)")
    p.add_argument("--site", help="only this site")
    p.add_argument("--device", help="only this device (its id)")
    p.add_argument("--out", type=Path, required=True, help="folder for the four files (created if needed)")
    p.set_defaults(func=run)
