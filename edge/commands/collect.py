"""`edge collect`: store a fleet's MQTT traffic in the trial database until stopped."""

from __future__ import annotations

import argparse
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from edge.central.fleet.client import central_options
from edge.central.fleet.folder import FleetDir
from edge.central.trial.collector import DEFAULT_GROUP, Collector
from edge.central.trial.intake import IntakeCounts
from edge.commands.common import print_json
from edge.link import LinkError, MqttOptions, probe_broker

CONNECT_TIMEOUT_S = 30.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(Exception):
    """SIGINT or SIGTERM arrived: `edge collect` stops where it is, a wait included."""


@contextmanager
def stopped_by_signals() -> Iterator[None]:
    """SIGINT and SIGTERM stop `edge collect` the same way at any point: the first raises `Stopped`,
    which ends whatever the block waits for (the trial database, the broker, the subscription,
    the next message), and the block is left as if it had ended. A library that turns the
    exception into its own (paho's loop returns an error code instead) changes nothing: after a
    stop signal, any exception is the stop. Later signals are ignored, so nothing interrupts the
    collector's own stop. The handlers from before are back on leaving."""
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    requested = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        _ignore_stop_signals()
        requested.set()
        raise Stopped

    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)
    try:
        yield
    except Exception:
        if not requested.is_set():
            raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore_stop_signals() -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def probe(options: MqttOptions, client_id: str, fleet_given: bool) -> None:
    """Connect once before anything starts, so a broker that cannot let the collector in is one
    line at once (`LinkError`), not half a minute of paho retrying."""
    try:
        probe_broker(options, client_id, CONNECT_TIMEOUT_S)
    except LinkError as e:
        if options.tls and not fleet_given:
            raise LinkError(
                f"{e}; a fleet's broker (edge fleet broker-config) wants --fleet FOLDER: its CA and central certificate"
            ) from None
        raise


def known_devices(fleet: FleetDir) -> frozenset[str]:
    """`site/device` of every device provisioned from the fleet (those with a folder there)."""
    return frozenset(f"{site}/{device}" for site, device in fleet.devices())


def run(args: argparse.Namespace) -> int:
    # Here, not at the top: the device's `edge` (no `central` extra, no SQLAlchemy) imports every command.
    from edge.central.trial.store import TrialStore

    devices = None
    if args.fleet is not None:
        fleet = FleetDir(args.fleet).require()
        options = central_options(fleet, args.broker)
        devices = known_devices(fleet) if args.fleet_devices_only else None
    else:
        options = MqttOptions.from_url(args.broker)
    counts = IntakeCounts()  # what a stop before the collector started reports
    with stopped_by_signals():
        probe(options, args.client_id, fleet_given=args.fleet is not None)
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
                while True:  # until SIGINT or SIGTERM raises Stopped
                    time.sleep(3600)
            finally:
                _ignore_stop_signals()
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
