"""`edge fleet broker-config`: the central Mosquitto's certificate, TLS listener and ACL."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.central.fleet_broker import CONF_NAME, DEFAULT_INSTALLED_AT, DEFAULT_PORT, write_broker_config
from edge.central.fleet_dir import FleetDir


def run(args: argparse.Namespace) -> int:
    written = write_broker_config(
        FleetDir(args.fleet), args.out, args.host, args.ip, port=args.port, installed_at=args.installed_at
    )
    for path in written:
        print(path)
    print(
        f"copy these to {args.installed_at} on the broker (broker.key readable by mosquitto only) "
        f"and include {args.installed_at / CONF_NAME} from mosquitto.conf (e.g. via conf.d)"
    )
    return 0


def add_verb(verbs) -> None:
    p = verbs.add_parser(
        "broker-config", help="the broker's certificate (with SANs), Mosquitto TLS listener and pattern ACL"
    )
    p.add_argument("--fleet", type=Path, required=True, help="the fleet folder (edge fleet init)")
    p.add_argument("--host", action="append", default=[], help="a DNS name devices use for the broker (repeatable)")
    p.add_argument("--ip", action="append", default=[], help="an IP address devices use for the broker (repeatable)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TLS listener port (default {DEFAULT_PORT})")
    p.add_argument(
        "--installed-at",
        type=Path,
        default=DEFAULT_INSTALLED_AT,
        help=f"where the files will be on the broker host (default {DEFAULT_INSTALLED_AT})",
    )
    p.add_argument("--out", type=Path, required=True, help="folder to write the files into")
    p.set_defaults(func=run)
