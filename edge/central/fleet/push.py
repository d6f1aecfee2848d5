"""Signed messages to one device, and its answer: a gallery (`gallery/set`, sealed to the device)
and a configuration change (`config/set`).

Both are published once with QoS 1. A configuration change is never retained (it would be
replayed, and refused as stale, at every reconnect). A gallery is retained only when `retain`
asks for it (a deployment's delivery, `edge.central.deployments.gallery`): the broker hands it to
a device that was offline as soon as it reconnects, the next delivery replaces it, and a device
already running it drops the identical copy. A gallery is always sealed: the broker, and its
persistence file, only ever hold ciphertext. The answer is read from the device's
retained status (`gallery_push_version`) or `config/reported` (`answered_version`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from edge.atomic import write_atomically
from edge.central.fleet.client import central_options, publish, retained
from edge.central.fleet.folder import FleetDir, FleetDirError
from edge.errors import OperatorError
from edge.gallery import Bundle, encode_bundle
from edge.link import MqttOptions, Topics, gallery_set
from edge.link.payloads import ConfigSet, utc_now
from edge.link.signed import load_private_key, load_public_key, sign
from edge.vision.false_alerts import FalseAlerts

VERSION_FILE = "gallery.version"


class MessageError(OperatorError):
    """A message to a device cannot be made, or the device refused it or did not answer in time."""


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


def push_gallery(
    fleet: FleetDir,
    site: str,
    device: str,
    bundle: Bundle,
    broker_url: str,
    wait_s: float | None,
    retain: bool = False,
) -> dict[str, Any]:
    """Seal `bundle` to the device, sign it, publish it on its `gallery/set` (retained with
    `retain`); with `wait_s`, wait for the device to report it in use (`MessageError` when it
    refuses or stays silent)."""
    folder = fleet.require_device(site, device)
    recipient = load_public_key(folder / "box.pub", X25519PublicKey, f"device {site}/{device}'s box key")
    signing = load_private_key(fleet.signing_key, Ed25519PrivateKey, "fleet signing key")
    options = central_options(fleet, broker_url)
    version = next_version(folder)
    payload = gallery_set.build(
        encode_bundle(bundle),
        version=version,
        device=f"{site}/{device}",
        embedder_model_id=bundle.model_id,
        recipient=recipient,
        signing_key=signing,
    )
    topics = Topics(site, device)
    publish(options, topics.topic(gallery_set.TOPIC), payload.decode(), retain=retain)
    report: dict[str, Any] = {
        "device": f"{site}/{device}",
        "push_version": version,
        "gallery_version": bundle.version,
        "identities": len(bundle.identities),
        "templates": sum(len(r.templates) for r in bundle.identities),
        "message_bytes": len(payload),
    }
    if wait_s is not None:
        report.update(_wait_for_gallery(options, topics.status, version, bundle.version, wait_s))
    return report


def _wait_for_gallery(
    options: MqttOptions, status_topic: str, version: int, gallery_version: str, wait_s: float
) -> dict[str, Any]:
    """What the device's retained status says about push `version`, once it says anything."""

    def answer(status: dict[str, Any]) -> dict[str, Any] | None:
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
            raise MessageError(f"device refused the gallery: {error}")
        return None

    return _first_answer(
        options,
        status_topic,
        answer,
        wait_s,
        f"the device did not report gallery version {gallery_version} within {wait_s:g} s "
        f"(push {version} was sent; is the device online? edge fleet status)",
    )


def parse_assignment(text: str) -> tuple[str, Any]:
    """`key=value` -> (key, JSON value, else the text as a string)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise MessageError(f"{text!r} is not key=value (e.g. match.threshold=0.45)")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def config_message(set_: dict[str, Any], unset: list[str], version: int, key: Ed25519PrivateKey) -> dict[str, Any]:
    """The signed `config/set` body; checked against the message schema before it is sent."""
    body = {"version": version, "issued_at": utc_now().isoformat().replace("+00:00", "Z"), "set": set_, "unset": unset}
    message = sign(body, key)
    try:
        ConfigSet.model_validate_json(json.dumps(message))
    except ValueError as e:
        raise MessageError(f"not a valid config/set: {e}") from None
    return message


def set_config(
    fleet: FleetDir,
    site: str,
    device: str,
    changes: tuple[dict[str, Any], list[str]],
    broker_url: str,
    version: int | None,
    wait_s: float | None,
) -> dict[str, Any]:
    """Sign and send one configuration change, `changes` being the keys to set and to unset
    (version: Unix time in ms unless given); with `wait_s`, wait for the device's answer: its
    `status` (applied, rejected or rolled_back) and `reason` (`MessageError` when it stays silent)."""
    set_, unset = changes
    fleet.require_device(site, device)
    if not set_ and not unset:
        raise MessageError("nothing to change: give key=value pairs or --unset KEY")
    version = version if version is not None else time.time_ns() // 1_000_000
    signing = load_private_key(fleet.signing_key, Ed25519PrivateKey, "fleet signing key")
    message = config_message(set_, unset, version, signing)
    options = central_options(fleet, broker_url)
    topics = Topics(site, device)
    publish(options, topics.config_set, json.dumps(message))
    result: dict[str, Any] = {"device": f"{site}/{device}", "version": version, "set": set_, "unset": unset}
    if wait_s is None:
        return result
    report = _first_answer(
        options,
        topics.config_reported,
        lambda report: report if report.get("answered_version") == version else None,
        wait_s,
        f"the device did not answer config version {version} within {wait_s:g} s (is it online?)",
    )
    result.update(status=report.get("status"), reason=report.get("last_error"), version_in_force=report.get("version"))
    return result


def _first_answer(
    options: MqttOptions,
    topic: str,
    answer: Callable[[dict[str, Any]], dict[str, Any] | None],
    wait_s: float,
    silence: str,
) -> dict[str, Any]:
    """The first answer other than None that `answer` finds in the retained JSON object on
    `topic`, read again until `wait_s` has passed; `MessageError(silence)` then."""
    deadline = time.monotonic() + wait_s
    while True:
        found = answer(_json_object(retained(options, topic, settle_s=0.5).get(topic)))
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            raise MessageError(silence)


def _json_object(value: object) -> dict[str, Any]:
    """`value` (JSON text or an already parsed value) as an object; {} for anything else."""
    if isinstance(value, (bytes, str)):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return {}
    return value if isinstance(value, dict) else {}
