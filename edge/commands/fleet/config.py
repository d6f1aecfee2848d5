"""`edge fleet config set SITE/DEVICE key=value ... [--unset key]`: change one device's settings.

The change is a `config/set` message (docs/pages/fleet.md, "Remote configuration") signed with the
fleet key (`edge.central.fleet.push`). Values are JSON where they parse as JSON (`0.45`, `true`,
`null`), else strings (`camera.source=rtsp://cam/stream`). The version is the current Unix time in
milliseconds unless `--version` gives one: it must be above the device's.

`--wait S` reads the device's retained `config/reported` until it answers this version, prints
the outcome, and fails (exit 1) when the device refused the change or rolled it back.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.central.fleet.folder import FleetDir, parse_device
from edge.central.fleet.push import parse_assignment, set_config
from edge.commands.common import CommandError, print_json


def run_set(args: argparse.Namespace) -> int:
    fleet = FleetDir(args.fleet).require()
    site, device = parse_device(args.device)
    changes = dict(parse_assignment(a) for a in args.assignments), args.unset
    result = set_config(fleet, site, device, changes, args.broker, args.version, args.wait)
    print_json(result)
    if args.wait is not None and result["status"] != "applied":
        raise CommandError(
            f"device {result['device']} {result['status']} config version {result['version']}: {result['reason']}"
        )
    return 0


def add_verb(verbs) -> None:
    p = verbs.add_parser("config", help="change a device's settings over MQTT (signed config/set)")
    actions = p.add_subparsers(dest="action", required=True)
    s = actions.add_parser("set", help="set or unset remotely settable keys on one device")
    s.add_argument("device", metavar="SITE/DEVICE")
    s.add_argument("assignments", nargs="*", metavar="KEY=VALUE", help="e.g. match.threshold=0.45 (JSON or text)")
    s.add_argument("--unset", action="append", default=[], metavar="KEY", help="back to the device's own file")
    s.add_argument("--fleet", type=Path, required=True, help="the fleet folder (edge fleet init)")
    s.add_argument("--broker", required=True, help="mqtts://HOST:PORT (with the central certificate) or mqtt://")
    s.add_argument("--version", type=int, help="version of this change (default: Unix time in ms)")
    s.add_argument("--wait", type=float, metavar="SECONDS", help="wait this long for the device's answer")
    s.set_defaults(func=run_set)
