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
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pydantic import ValidationError

import edge
from edge.central.fleet_dir import FleetDir, FleetDirError
from edge.central.fleet_pki import Authority, write_certificate
from edge.config import DeviceConfig, describe_validation_error
from edge.link.broker_url import parse_broker_url
from edge.link.errors import BrokerUrlError
from edge.link.signed import write_private_key, write_public_key

SOURCE_TREE = Path(edge.__file__).resolve().parents[1]  # the checkout, when running from one
FIRMWARE = SOURCE_TREE / "firmware-config"
EXTRAS = "litert"  # the device's TFLite interpreter (install.sh installs edge[litert])
# The oldest glibc among the boards' systems (Ubuntu 22.04 / JetPack 6: 2.35; Raspberry Pi OS
# bookworm: 2.36): wheels for any manylinux up to it run on all of them.
GLIBC_MINOR = 35
# What building the wheel reads. It is built from a copy of these: in the checkout, setuptools'
# build/ folder keeps modules deleted since the last build and would ship them.
BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE", "edge", "models")


@dataclass(frozen=True)
class Board:
    """What a board runs: its template, CPU and the Python of its system."""

    arch: str
    python_version: str


BOARDS = {
    "pi": Board("aarch64", "3.11"),  # Raspberry Pi OS bookworm
    "jetson": Board("aarch64", "3.10"),  # JetPack 6 (Ubuntu 22.04)
    "usb": Board("x86_64", "3.11"),  # any Linux box with a USB or RTSP camera (Debian bookworm)
}
ARCHES = ("aarch64", "x86_64")


@dataclass(frozen=True)
class Request:
    """What `edge fleet provision` was asked for."""

    site: str
    device_id: str
    broker: str
    board: str
    arch: str
    python_version: str
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
        _write_wheels(request, scratch / "wheels")
        _write_firmware(request, scratch)
        issue_device(fleet, request.site, request.device_id, scratch / "certs")
        _write_manifest(request, scratch)
        scratch.rename(out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    tarball = out.with_name(out.name + ".tar.gz")
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(out, arcname=out.name)
    return tarball


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
    if request.arch not in ARCHES:
        raise FleetDirError(f"--arch {request.arch!r}: one of {', '.join(ARCHES)}")
    if out.exists():
        raise FleetDirError(f"{out} exists: give a new folder for the bundle")
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


def _write_manifest(request: Request, bundle: Path) -> None:
    wheel = next((bundle / "wheels").glob("edge-*.whl"))
    manifest = {
        "board": request.board,
        "site": request.site,
        "device_id": request.device_id,
        "broker": request.broker,
        "software_version": wheel.name.split("-")[1],
        "arch": request.arch,
        "python_version": request.python_version,
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    (bundle / "bundle.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _write_wheels(request: Request, wheels: Path) -> None:
    """The package's wheel and, for the board's CPU and Python, every wheel it needs on a device."""
    wheels.mkdir()
    with tempfile.TemporaryDirectory() as tmp:
        own = request.wheel or _build_wheel(Path(tmp))
        if not own.is_file() or not own.name.startswith("edge-") or own.suffix != ".whl":
            raise FleetDirError(f"--wheel {own}: not a wheel of edge (edge-VERSION-py3-none-any.whl)")
        source = ["--no-index", "--find-links", str(request.wheels_from)] if request.wheels_from else []
        platforms = [f"manylinux_2_{m}_{request.arch}" for m in range(GLIBC_MINOR, 16, -1)]
        platforms.append(f"manylinux2014_{request.arch}")
        _pip(
            "download",
            "--only-binary=:all:",
            *(f"--platform={p}" for p in platforms),
            f"--python-version={request.python_version}",
            "--implementation=cp",
            f"--abi=cp{request.python_version.replace('.', '')}",
            "--dest",
            str(wheels),
            *source,
            f"{own.resolve()}[{EXTRAS}]",
        )


def _build_wheel(tmp: Path) -> Path:
    """The package's wheel, built from a copy of the checkout this code runs from."""
    if not (SOURCE_TREE / "pyproject.toml").is_file():
        raise FleetDirError("edge is not running from a checkout: give the package's wheel with --wheel PATH")
    tree = tmp / "src"
    for name in BUILD_INPUTS:
        source = SOURCE_TREE / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.is_file():
            tree.mkdir(exist_ok=True)
            shutil.copy(source, tree / name)
    _pip("wheel", "--no-deps", "--wheel-dir", str(tmp / "dist"), str(tree))
    return next((tmp / "dist").glob("edge-*.whl"))


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        last = [line for line in done.stderr.splitlines() if line.strip() and "WARNING" not in line][-3:]
        raise FleetDirError(f"pip {args[0]} failed: {' '.join(last) or done.returncode}")
