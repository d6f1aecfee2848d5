"""`edge fleet broker-config`: the central Mosquitto's certificate, TLS listeners, queue and ACL."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.central.fleet.broker import (
    ALERTS_PER_HOUR,
    CONF_NAME,
    DEFAULT_CENTRAL_BIND,
    DEFAULT_CENTRAL_PORT,
    DEFAULT_DEVICES,
    DEFAULT_INSTALLED_AT,
    DEFAULT_OUTAGE_HOURS,
    DEFAULT_PORT,
    Listeners,
    QueuePlan,
    write_broker_config,
)
from edge.central.fleet.folder import FleetDir


def run(args: argparse.Namespace) -> int:
    listeners = Listeners(args.port, args.bind, args.central_port, args.central_bind, args.installed_at)
    queue = QueuePlan(args.devices, args.outage_hours)
    written = write_broker_config(FleetDir(args.fleet), args.out, args.host, args.ip, listeners, queue)
    for path in written:
        print(path)
    print(
        f"copy these to {args.installed_at} on the broker (broker.key readable by mosquitto only) "
        f"and include {args.installed_at / CONF_NAME} from mosquitto.conf (e.g. via conf.d); "
        f"central tools connect to mqtts://{args.central_bind}:{args.central_port}"
    )
    return 0


def add_verb(verbs) -> None:
    p = verbs.add_parser(
        "broker-config",
        help="the broker's certificate (with SANs), Mosquitto TLS listeners for devices and central tools, "
        "its queue for a collector outage, and the pattern ACL",
    )
    p.add_argument("--fleet", type=Path, required=True, help="the fleet folder (edge fleet init)")
    p.add_argument("--host", action="append", default=[], help="a DNS name devices use for the broker (repeatable)")
    p.add_argument("--ip", action="append", default=[], help="an IP address devices use for the broker (repeatable)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"devices' listener port (default {DEFAULT_PORT})")
    p.add_argument("--bind", metavar="ADDR", help="IP address the devices' listener binds (default: every interface)")
    p.add_argument(
        "--central-port",
        type=int,
        default=DEFAULT_CENTRAL_PORT,
        help=f"the central tools' listener port (default {DEFAULT_CENTRAL_PORT})",
    )
    p.add_argument(
        "--central-bind",
        metavar="ADDR",
        default=DEFAULT_CENTRAL_BIND,
        help=f"IP address the central tools' listener binds, out of devices' reach (default {DEFAULT_CENTRAL_BIND})",
    )
    p.add_argument(
        "--devices",
        type=int,
        default=DEFAULT_DEVICES,
        help=f"devices the queue is sized for (default {DEFAULT_DEVICES})",
    )
    p.add_argument(
        "--outage-hours",
        type=float,
        default=DEFAULT_OUTAGE_HOURS,
        help=f"how long the collector may be away or unable to store before the broker drops messages "
        f"(default {DEFAULT_OUTAGE_HOURS:g}; each device counted at its stats windows, status refreshes and "
        f"{ALERTS_PER_HOUR} alerts an hour)",
    )
    p.add_argument(
        "--installed-at",
        type=Path,
        default=DEFAULT_INSTALLED_AT,
        help=f"where the files will be on the broker host (default {DEFAULT_INSTALLED_AT})",
    )
    p.add_argument("--out", type=Path, required=True, help="folder to write the files into")
    p.set_defaults(func=run)
