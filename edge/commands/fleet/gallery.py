"""`edge fleet gallery push SITE/DEVICE --gallery FILE`: give one device its gallery over MQTT.

The gallery is exported as a bundle, sealed to the device's X25519 key (`box.pub` in the fleet
folder), signed with the fleet key and published once on the device's `gallery/set` with QoS 1,
not retained: a retained message would stay in the broker (and its persistence file) for good.
Even a QoS 1 message may be written to the broker's persistence file while it waits for a
subscriber, which is why it is sealed: the broker only ever holds ciphertext.

A push reaches a device that is connected (its session is not kept while it is away); `--wait`
reads the device's retained status until it reports the pushed gallery, or the refusal.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from edge.atomic import write_atomically
from edge.central.fleet.client import central_options, publish, retained
from edge.central.fleet.folder import FleetDir, FleetDirError, parse_device
from edge.commands.common import CommandError, print_json
from edge.commands.gallery import open_store
from edge.gallery import encode_bundle
from edge.link import MqttOptions, Topics, gallery_set
from edge.link.signed import load_private_key, load_public_key
from edge.vision.false_alerts import FalseAlerts

VERSION_FILE = "gallery.version"


def next_version(folder: Path) -> int:
    """Above every push issued to this device from this fleet folder, and at least the Unix time
    in ms (so a fleet folder restored from a backup still issues newer versions); saved before
    the push is sent, so no version is ever issued twice."""
    path = folder / VERSION_FILE
    try:
        last = int(path.read_text()) if path.exists() else 0
    except (OSError, ValueError) as e:
        raise FleetDirError(f"{path} does not hold a push version ({e}); fix or remove it") from None
    version = max(last + 1, time.time_ns() // 1_000_000)
    write_atomically(path, f"{version}\n".encode())
    return version


def run_push(args: argparse.Namespace) -> int:
    fleet = FleetDir(args.fleet).require()
    site, device = parse_device(args.device)
    folder = fleet.require_device(site, device)
    recipient = load_public_key(folder / "box.pub", X25519PublicKey, f"device {site}/{device}'s box key")
    signing = load_private_key(fleet.signing_key, Ed25519PrivateKey, "fleet signing key")
    options = central_options(fleet, args.broker)
    with open_store(args) as store:
        bundle = store.bundle()
    bundle_json = encode_bundle(bundle)
    version = next_version(folder)
    payload = gallery_set.build(
        bundle_json,
        version=version,
        device=f"{site}/{device}",
        embedder_model_id=bundle.model_id,
        recipient=recipient,
        signing_key=signing,
    )
    topics = Topics(site, device)
    publish(options, topics.topic(gallery_set.TOPIC), payload.decode())
    report: dict[str, Any] = {
        "device": f"{site}/{device}",
        "push_version": version,
        "gallery_version": bundle.version,
        "identities": len(bundle.identities),
        "templates": sum(len(r.templates) for r in bundle.identities),
        "message_bytes": len(payload),
    }
    if args.wait is not None:
        report.update(wait_for_device(options, topics.status, version, bundle.version, args.wait))
    print_json(report)
    return 0


def wait_for_device(
    options: MqttOptions, status_topic: str, version: int, gallery_version: str, wait_s: float
) -> dict[str, Any]:
    """What the device's retained status says about push `version`, once it says anything."""
    deadline = time.monotonic() + wait_s
    while True:
        status = _json_object(retained(options, status_topic, settle_s=0.5).get(status_topic))
        details = _json_object(status.get("details"))
        in_use = _json_object(status.get("versions")).get("gallery_version")
        accepted = details.get("gallery_push_version")
        if isinstance(accepted, int) and accepted >= version and in_use == gallery_version:
            return {
                "device_gallery_version": in_use,
                "gallery_identities": details.get("gallery_identities"),
                **FalseAlerts.from_details(details).details(),
            }
        error = details.get("gallery_push_error")
        if isinstance(error, str) and error.startswith(f"push {version} "):
            raise CommandError(f"device refused the gallery: {error}")
        if time.monotonic() >= deadline:
            raise CommandError(
                f"the device did not report gallery version {gallery_version} within {wait_s:g} s "
                f"(push {version} was sent; is the device online? edge fleet status)"
            )


def _json_object(value: object) -> dict[str, Any]:
    """`value` (JSON text or an already parsed value) as an object; {} for anything else."""
    if isinstance(value, (bytes, str)):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return {}
    return value if isinstance(value, dict) else {}


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
