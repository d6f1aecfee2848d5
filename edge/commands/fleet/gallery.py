"""`edge fleet gallery push SITE/DEVICE --gallery FILE`: give one device its gallery over MQTT.

The gallery is exported as a bundle, sealed to the device's X25519 key (`box.pub` in the fleet
folder), signed with the fleet key and published once on the device's `gallery/set`
(`edge.central.fleet.push`). A push reaches a device that is connected (its session is not kept
while it is away); `--wait` reads the device's retained status until it reports the pushed
gallery, or the refusal.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.central.fleet.folder import FleetDir, parse_device
from edge.central.fleet.push import push_gallery
from edge.commands.common import print_json, settings_from
from edge.device.parts import open_gallery


def run_push(args: argparse.Namespace) -> int:
    fleet = FleetDir(args.fleet).require()
    site, device = parse_device(args.device)
    settings, _, _ = settings_from(args, **{"models.models_dir": args.models})
    with open_gallery(settings, args.gallery) as store:
        bundle = store.bundle()
    print_json(push_gallery(fleet, site, device, bundle, args.broker, args.wait))
    return 0


def add_verb(verbs) -> None:
    p = verbs.add_parser("gallery", help="give a device its gallery over MQTT (sealed to it, signed)")
    actions = p.add_subparsers(dest="action", required=True)
    push = actions.add_parser("push", help="push a gallery file to one device (gallery/set)")
    push.add_argument("device", metavar="SITE/DEVICE")
    push.add_argument("--gallery", type=Path, required=True, help="gallery file (SQLite, from edge enroll)")
    push.add_argument("--fleet", type=Path, required=True, help="the fleet folder (edge fleet init)")
    push.add_argument("--broker", required=True, help="mqtts://HOST:PORT (with the central certificate) or mqtt://")
    push.add_argument("--models", type=Path, help="models folder (default: the bundled models/)")
    push.add_argument(
        "--wait", type=float, metavar="SECONDS", help="wait this long for the device to report the pushed gallery"
    )
    push.set_defaults(func=run_push)
