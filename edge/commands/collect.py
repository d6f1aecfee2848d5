"""`edge collect`: store a fleet's MQTT traffic in the trial database until stopped."""

from __future__ import annotations

import argparse
import signal
import socket
import threading
from pathlib import Path

from edge.central.collector import DEFAULT_GROUP, Collector
from edge.central.fleet_client import central_options
from edge.central.fleet_dir import FleetDir
from edge.commands.common import print_json
from edge.link import MqttOptions

CONNECT_TIMEOUT_S = 30.0


def known_devices(fleet: FleetDir) -> frozenset[str]:
    """`site/device` of every device provisioned from the fleet (those with a folder there)."""
    return frozenset(f"{p.parent.name}/{p.name}" for p in (fleet.root / "devices").glob("*/*") if p.is_dir())


def run(args: argparse.Namespace) -> int:
    # Here, not at the top: the device's `edge` (no `central` extra, no SQLAlchemy) imports every command.
    from edge.central.trial_store import TrialStore

    devices = None
    if args.fleet is not None:
        fleet = FleetDir(args.fleet).require()
        options = central_options(fleet, args.broker)
        devices = known_devices(fleet) if args.fleet_devices_only else None
    else:
        options = MqttOptions.from_url(args.broker)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with TrialStore.open(args.db) as store:
        collector = Collector(
            options,
            store.add_many,
            client_id=args.client_id,
            group=args.group,
            devices=devices,
            log_every_s=args.log_every,
        )
        collector.start()
        try:
            collector.wait_subscribed(CONNECT_TIMEOUT_S)
            stop.wait()
        finally:
            counts = collector.stop()
    print_json(counts.as_dict())
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "collect",
        help="store every device's status, match, stats and config/reported in the trial database",
        description="Subscribes with a persistent MQTT 5 session to a shared subscription, so several "
        "collectors of one group split a fleet's traffic and nothing is lost while one restarts. "
        "Stops on SIGINT/SIGTERM and prints its counts as JSON.",
    )
    p.add_argument("--broker", required=True, help="mqtt://HOST:PORT or mqtts:// (with --fleet)")
    p.add_argument("--db", required=True, help="trial database: sqlite:///FILE or postgresql://USER@HOST:PORT/DB")
    p.add_argument("--fleet", type=Path, help="the fleet folder: its central certificate for an mqtts:// broker")
    p.add_argument(
        "--fleet-devices-only",
        action="store_true",
        help="refuse (count as unknown_device) messages of devices not provisioned from --fleet",
    )
    p.add_argument(
        "--client-id",
        default=f"edge-collector-{socket.gethostname()}",
        help="the session's stable id: a restart with the same id gets what arrived meanwhile; "
        "each collector of a group needs its own (default: edge-collector-<hostname>)",
    )
    share = p.add_mutually_exclusive_group()
    share.add_argument("--group", default=DEFAULT_GROUP, help=f"shared subscription group (default {DEFAULT_GROUP})")
    share.add_argument(
        "--no-share",
        dest="group",
        action="store_const",
        const=None,
        help="one collector alone: plain subscriptions, which Mosquitto 2.0 restores after its own restart "
        "(shared ones it does not)",
    )
    p.add_argument("--log-every", type=float, default=60.0, metavar="SECONDS", help="counts log line period")
    p.set_defaults(func=run)
