"""`edge trial verdict` (one alert) and `edge trial verdicts import` (a day's CSV log).

Verdicts are appended, never changed, in two stages: the operator's adjudication, then, where an
officer engaged the person, the outcome. The latest of each stage counts in the report; the
history (who said what, when) is kept.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.central.trial.terms import ADJUDICATIONS, ENGAGEMENTS, VERDICT_COLUMNS

DB_HELP = "the trial database: sqlite:///FILE (or a file path) or postgresql://USER@HOST:PORT/DB"


def run_verdict(args: argparse.Namespace) -> int:
    from edge.central.trial.store import TrialStore  # the `central` extra: not on a device

    with TrialStore.open(args.db, create=False) as store:
        store.add_verdict(args.event_id, args.outcome, args.by, args.note)
    print(f"{args.event_id}: {args.outcome} by {args.by}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from edge.central.trial.store import TrialStore  # the `central` extra: not on a device
    from edge.central.trial.verdicts import import_verdicts

    with TrialStore.open(args.db, create=False) as store:
        count = import_verdicts(store, args.csv)
    print(f"{count} verdicts imported from {args.csv}")
    return 0


def add_verb(verbs) -> None:
    p = verbs.add_parser(
        "verdict",
        help="record an operator's adjudication of one alert, or the outcome where an officer engaged "
        "(appended; the latest of each counts)",
    )
    p.add_argument("event_id", metavar="EVENT_ID", help="the alert's event id (from the match event)")
    p.add_argument(
        "--outcome",
        required=True,
        help=f"the operator's adjudication ({', '.join(ADJUDICATIONS)}) or, where an officer engaged "
        f"the person, the outcome ({', '.join(ENGAGEMENTS)})",
    )
    p.add_argument("--by", required=True, help="who adjudicated or engaged")
    p.add_argument("--note", help="a short note")
    p.add_argument("--db", required=True, help=DB_HELP)
    p.set_defaults(func=run_verdict)

    log = verbs.add_parser("verdicts", help="verdicts in bulk")
    actions = log.add_subparsers(dest="action", required=True)
    imp = actions.add_parser(
        "import",
        help=f"a day's verdict log, CSV with columns {','.join(VERDICT_COLUMNS)}[,at]: all lines or none",
    )
    imp.add_argument("csv", type=Path, metavar="CSV", help="the log; 'at' (ISO 8601 with zone) defaults to now")
    imp.add_argument("--db", required=True, help=DB_HELP)
    imp.set_defaults(func=run_import)
