"""`edge trial report`: a trial's scans, alerts and verdicts, with every denominator, as four
files; or, with `--deployment`, one deployment's report in one format (a file, or stdout)."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from edge.commands.common import CommandError
from edge.commands.trial.verdict import DB_HELP

DEPLOYMENT_FORMATS = ("md", "csv", "json", "html")


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day: use YYYY-MM-DD (UTC)") from None


def _format(args: argparse.Namespace) -> str:
    """--format, else the --out file's suffix when it names one, else Markdown."""
    if args.format:
        return str(args.format)
    suffix = args.out.suffix.lstrip(".") if args.out else ""
    return suffix if suffix in DEPLOYMENT_FORMATS else "md"


def run_deployment(args: argparse.Namespace) -> int:
    from edge.central.deployments.report import FORMATS, build
    from edge.central.deployments.schema import migrate
    from edge.central.trial.store import TrialStore

    narrowed = [
        flag
        for flag, value in (
            ("--from", args.first_day),
            ("--to", args.last_day),
            ("--site", args.site),
            ("--device", args.device),
        )
        if value
    ]
    if narrowed:
        raise CommandError(f"--deployment covers its own devices and period: drop {', '.join(narrowed)}")
    with TrialStore.open(args.db, create=False, also=(migrate,)) as store:
        report = build(store.engine, args.deployment)
    text = FORMATS[_format(args)][1](report)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(args.out)
    print(report["headline"])
    return 0


def run(args: argparse.Namespace) -> int:
    if args.deployment:
        return run_deployment(args)
    # the `central` extra (SQLAlchemy, matplotlib): not on a device, whose `edge` must still start
    from edge.central.trial.report import build_report, write_report
    from edge.central.trial.report.data import Selection
    from edge.central.trial.report.load import load
    from edge.central.trial.store import TrialStore

    if args.out is None:
        raise CommandError("--out FOLDER: where the four files go")
    if args.format:
        raise CommandError("--format is for one deployment's report (--deployment); a trial's report is four files")
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
    p = verbs.add_parser(
        "report",
        help="report.md, .csv, .json and a self-contained .html of a trial, or one deployment's report (--deployment)",
    )
    p.add_argument("--db", required=True, help=DB_HELP)
    p.add_argument("--from", dest="first_day", type=_day, help="first day included, YYYY-MM-DD (UTC)")
    p.add_argument("--to", dest="last_day", type=_day, help="last day included, YYYY-MM-DD (UTC)")
    p.add_argument("--site", help="only this site")
    p.add_argument("--device", help="only this device (its id)")
    p.add_argument(
        "--deployment",
        metavar="NAME",
        help="one deployment's report: its devices over its period, with its facts and changes",
    )
    p.add_argument(
        "--format",
        choices=DEPLOYMENT_FORMATS,
        help="with --deployment: the format (default: the --out file's suffix, else md)",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="folder for the four files (created if needed); with --deployment, the file (default: stdout)",
    )
    p.set_defaults(func=run)
