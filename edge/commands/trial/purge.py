"""`edge trial purge`: deployments whose retention period has passed keep their report's figures;
their alerts, verdicts, reference photos and watchlists are deleted (the console does it daily)."""

from __future__ import annotations

import argparse
from datetime import datetime

from edge.commands.trial.verdict import DB_HELP


def _time(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time: use e.g. 2026-12-05T08:00Z") from None
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone: use e.g. 2026-12-05T08:00Z (UTC)")
    return at


def run(args: argparse.Namespace) -> int:
    from edge.central.deployments.retention import purge_due  # the `central` extra: not on a device
    from edge.central.deployments.schema import migrate
    from edge.central.trial.store import TrialStore

    with TrialStore.open(args.db, create=False, also=(migrate,)) as store:
        purged = purge_due(store.engine, args.now)
    for name in purged:
        print(f"{name}: purged (figures kept; alerts, verdicts, photos and watchlist deleted)")
    if not purged:
        print("nothing to purge: no ended deployment is past its retention period")
    return 0


def add_verb(verbs) -> None:
    p = verbs.add_parser(
        "purge",
        help="reduce each deployment past its retention period to its report's figures "
        "(alerts, verdicts, photos and watchlist deleted)",
    )
    p.add_argument("--db", required=True, help=DB_HELP)
    p.add_argument("--now", type=_time, help="purge what is due at this time (ISO 8601 with zone; default: now)")
    p.set_defaults(func=run)
