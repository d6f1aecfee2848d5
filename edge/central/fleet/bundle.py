"""A provisioning bundle: everything one board needs to join the fleet, in one folder and a tarball.

    install.sh  firstboot.sh  edge.service  edge.toml  bundle.json
    certs/ca.crt  certs/device.crt  certs/device.key  certs/fleet-signing.pub  certs/box.key
    wheels/*.whl        the package and its device dependencies, for the board's CPU and Python

`install.sh` (firmware-config/) installs it offline. The device's TLS certificate carries CN
"<site>/<device_id>", the name the broker's ACL fences; its X25519 box key opens the galleries
sealed to it, and the public halves stay in the fleet folder (`FleetDir.device_dir`). Provisioning
refuses a device the fleet already has: its old certificate would stay valid (there is no
revocation list), so a replaced board gets a new device id.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pydantic import ValidationError

from edge.central.fleet.folder import FleetDir, FleetDirError
from edge.central.fleet.pki import Authority, write_certificate
from edge.central.fleet.wheels import Target, collect_wheels
from edge.config import DeviceConfig, describe_validation_error
from edge.link.broker_url import parse_broker_url
from edge.link.errors import BrokerUrlError
from edge.link.signed import write_private_key, write_public_key
from edge.resources import shipped

FIRMWARE = shipped("firmware-config")


# Each board's template is firmware-config/boards/<board>.toml; its usual CPU and system Python:
BOARDS = {
    "pi": Target("aarch64", "3.11"),  # Raspberry Pi OS bookworm
    "jetson": Target("aarch64", "3.10"),  # JetPack 6 (Ubuntu 22.04)
    "usb": Target("x86_64", "3.11"),  # any Linux box with a USB or RTSP camera (Debian bookworm)
}
ARCHES = ("aarch64", "x86_64")


@dataclass(frozen=True)
class Request:
    """What `edge fleet provision` was asked for."""

    site: str
    device_id: str
    broker: str
    board: str
    target: Target
    wheel: Path | None = None  # the package's wheel; None: build it from the checkout
    wheels_from: Path | None = None  # dependency wheels to take instead of downloading them


def provision(fleet: FleetDir, request: Request, out: Path) -> Path:
    """Write the bundle folder `out` and `out`.tar.gz; returns the tarball.

    Everything that can fail slowly (wheels) happens before the device's keys are issued, in a
    scratch folder renamed to `out` at the end: a failed run leaves neither a half bundle nor a
    device in the fleet folder.
    """
    _check(fleet, request, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        version = collect_wheels(request.target, scratch / "wheels", request.wheel, request.wheels_from)
        _write_firmware(request, scratch)
        issue_device(fleet, request.site, request.device_id, scratch / "certs")
        _write_manifest(request, version, scratch)
        scratch.rename(out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    tarball = _tarball(out)
    # The bundle holds the device's private keys: the folder is 0700 (mkdtemp), the tarball 0600.
    with os.fdopen(os.open(tarball, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        with tarfile.open(fileobj=f, mode="w:gz") as tar:
            tar.add(out, arcname=out.name)
    return tarball


def _tarball(out: Path) -> Path:
    return out.with_name(out.name + ".tar.gz")


def issue_device(fleet: FleetDir, site: str, device_id: str, certs: Path) -> None:
    """The device's TLS key and certificate, its box key, the CA and the fleet's public signing key
    into `certs`; the certificate and the box key's public half into the fleet folder."""
    folder = _new_device(fleet, site, device_id)
    key, cert = Authority.load(fleet).issue(f"{site}/{device_id}", "client")
    box = X25519PrivateKey.generate()
    certs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(fleet.ca_cert, certs / "ca.crt")
    shutil.copyfile(fleet.signing_pub, certs / "fleet-signing.pub")
    write_certificate(certs / "device.crt", cert)
    write_private_key(certs / "device.key", key)
    write_private_key(certs / "box.key", box)
    folder.mkdir(parents=True, mode=0o700)
    write_certificate(folder / "device.crt", cert)
    write_public_key(folder / "box.pub", box.public_key())


def _new_device(fleet: FleetDir, site: str, device_id: str) -> Path:
    """The folder for a device new to the fleet, whose ids follow the device settings' own rule
    (they become its CN and its topic root)."""
    try:
        DeviceConfig(site=site, device_id=device_id)
    except ValidationError as e:
        raise FleetDirError(describe_validation_error(e)) from None
    folder = fleet.device_dir(site, device_id)
    if folder.exists():
        raise FleetDirError(f"device {site}/{device_id} is already provisioned ({folder}): give the new board a new id")
    return folder


def _check(fleet: FleetDir, request: Request, out: Path) -> None:
    fleet.require()
    _new_device(fleet, request.site, request.device_id)
    try:
        address = parse_broker_url(request.broker)
    except BrokerUrlError as e:
        raise FleetDirError(str(e)) from None
    if not address.tls:
        raise FleetDirError(f"--broker {request.broker}: a fleet broker is mqtts:// (devices log in by certificate)")
    if request.board not in BOARDS:
        raise FleetDirError(f"--board {request.board!r}: one of {', '.join(BOARDS)}")
    if request.target.arch not in ARCHES:
        raise FleetDirError(f"--arch {request.target.arch!r}: one of {', '.join(ARCHES)}")
    if out.exists() or _tarball(out).exists():
        raise FleetDirError(f"{out} or {_tarball(out).name} exists: give a new folder for the bundle")
    missing = [p for p in (FIRMWARE / "install.sh", _template(request.board)) if not p.is_file()]
    if missing:
        raise FleetDirError(f"{missing[0]} not found: run edge fleet provision from a checkout of edge")


def _template(board: str) -> Path:
    return FIRMWARE / "boards" / f"{board}.toml"


def _write_firmware(request: Request, bundle: Path) -> None:
    """install.sh, firstboot.sh and the unit as they are; edge.toml from the board's template."""
    text = _template(request.board).read_text()
    for name, value in (("site", request.site), ("device_id", request.device_id), ("broker", request.broker)):
        text = text.replace("{{" + name + "}}", value)
    (bundle / "edge.toml").write_text(text)
    for name in ("install.sh", "firstboot.sh", "edge.service"):
        shutil.copy(FIRMWARE / name, bundle / name)


def _write_manifest(request: Request, version: str, bundle: Path) -> None:
    manifest = {
        "board": request.board,
        "site": request.site,
        "device_id": request.device_id,
        "broker": request.broker,
        "software_version": version,
        "arch": request.target.arch,
        "python_version": request.target.python_version,
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    (bundle / "bundle.json").write_text(json.dumps(manifest, indent=2) + "\n")
