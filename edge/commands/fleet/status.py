"""`edge fleet status`: every device's state, versions and operating point, from the broker."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.central.fleet.client import central_options
from edge.central.fleet.folder import FleetDir
from edge.central.fleet.status import DEFAULT_STALE_AFTER_S, as_json, collect, table
from edge.commands.common import CommandError
from edge.link import Topics


def run(args: argparse.Namespace) -> int:
    fleet = FleetDir(args.fleet)
    options = central_options(fleet, args.broker)
    if options.tls:
        fleet.require()
    if args.site is not None:
        try:  # a site that is not one topic level is refused, never used as a wildcard
            Topics(args.site, "any")
        except ValueError as e:
            raise CommandError(f"--site: {e}") from None
    rows = collect(options, args.site, args.stale_after)
    if args.json:
        print(as_json(rows))
    elif rows:
        print(table(rows))
    else:
        print(f"no device has a retained status or config/reported on {options.address}")
    return 0


def add_verb(verbs) -> None:
    p = verbs.add_parser("status", help="a table of every device from its retained status and config/reported")
    p.add_argument("--fleet", type=Path, required=True, help="the fleet folder (edge fleet init)")
    p.add_argument("--broker", required=True, help="mqtts://HOST:PORT (with the central certificate) or mqtt://")
    p.add_argument("--site", help="only this site's devices")
    p.add_argument(
        "--stale-after",
        type=float,
        default=DEFAULT_STALE_AFTER_S,
        metavar="SECONDS",
        help=f"an online status older than this is marked stale (default {DEFAULT_STALE_AFTER_S:g})",
    )
    p.add_argument("--json", action="store_true", help="JSON for scripts instead of the table")
    p.set_defaults(func=run)
