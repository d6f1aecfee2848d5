"""`edge fleet config set SITE/DEVICE key=value ... [--unset key]`: change one device's settings.

The change is a `config/set` message (docs/pages/fleet.md, "Remote configuration") signed with the fleet key
and published once with QoS 1, not retained (a retained command would be replayed to the device
at every reconnect, and refused each time as stale). Values are JSON where they parse as JSON
(`0.45`, `true`, `null`), else strings (`camera.source=rtsp://cam/stream`). The version is the
current Unix time in milliseconds unless `--version` gives one: it must be above the device's.

`--wait S` reads the device's retained `config/reported` until it answers this version, prints
the outcome, and fails (exit 1) when the device refused the change or rolled it back.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.central.fleet.client import central_options, publish, retained
from edge.central.fleet.folder import FleetDir, parse_device
from edge.commands.common import CommandError, print_json
from edge.link import MqttOptions, Topics
from edge.link.payloads import ConfigSet, utc_now
from edge.link.signed import load_private_key, sign


def parse_assignment(text: str) -> tuple[str, Any]:
    """`key=value` -> (key, JSON value, else the text as a string)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise CommandError(f"{text!r} is not key=value (e.g. match.threshold=0.45)")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def build_message(set_: dict[str, Any], unset: list[str], version: int, key: Ed25519PrivateKey) -> dict[str, Any]:
    """The signed `config/set` body; checked against the message schema before it is sent."""
    body = {"version": version, "issued_at": utc_now().isoformat().replace("+00:00", "Z"), "set": set_, "unset": unset}
    message = sign(body, key)
    try:
        ConfigSet.model_validate_json(json.dumps(message))
    except ValueError as e:
        raise CommandError(f"not a valid config/set: {e}") from None
    return message


def wait_for_answer(options: MqttOptions, topic: str, version: int, wait_s: float) -> dict[str, Any]:
    """The device's `config/reported` once it answers `version`; `CommandError` after `wait_s`."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        payload = retained(options, topic, settle_s=0.5).get(topic)
        try:
            report = json.loads(payload) if payload is not None else {}
        except ValueError:
            report = {}
        if isinstance(report, dict) and report.get("answered_version") == version:
            return report
    raise CommandError(f"the device did not answer config version {version} within {wait_s:g} s (is it online?)")


def run_set(args: argparse.Namespace) -> int:
    fleet = FleetDir(args.fleet).require()
    site, device = parse_device(args.device)
    fleet.require_device(site, device)
    set_ = dict(parse_assignment(a) for a in args.assignments)
    if not set_ and not args.unset:
        raise CommandError("nothing to change: give key=value pairs or --unset KEY")
    version = args.version if args.version is not None else time.time_ns() // 1_000_000
    signing = load_private_key(fleet.signing_key, Ed25519PrivateKey, "fleet signing key")
    message = build_message(set_, args.unset, version, signing)
    options = central_options(fleet, args.broker)
    topics = Topics(site, device)
    publish(options, topics.config_set, json.dumps(message))
    result: dict[str, Any] = {"device": f"{site}/{device}", "version": version, "set": set_, "unset": args.unset}
    if args.wait is None:
        print_json(result)
        return 0
    report = wait_for_answer(options, topics.config_reported, version, args.wait)
    result.update(status=report.get("status"), reason=report.get("last_error"), version_in_force=report.get("version"))
    print_json(result)
    if report.get("status") != "applied":
        raise CommandError(
            f"device {site}/{device} {report.get('status')} config version {version}: {result['reason']}"
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
