"""The fleet folder that `edge fleet init` makes: where every key and certificate of a fleet lives.

One layout, named once here, for every central command (`provision`, `broker-config`, `config
set`, `gallery push`, `status`):

    DIR/ca.key, ca.crt                  fleet CA (TLS for the broker, the centre, every device)
    DIR/signing.key, signing.pub        Ed25519: signs remote configuration and galleries
    DIR/central.key, central.crt        the central tools' TLS client certificate (CN "central")
    DIR/devices/<site>/<device>/        one folder per provisioned device:
        device.crt                      its TLS certificate (CN "<site>/<device>")
        box.pub                         its X25519 public key: galleries are sealed to it
        gallery.version                 the last gallery push version issued to it

Private keys are 0600 and the folder 0700: whoever holds it controls the fleet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge.errors import OperatorError

CENTRAL_CN = "central"


class FleetDirError(OperatorError, ValueError):
    """The fleet folder is missing, incomplete, or lacks a device."""


@dataclass(frozen=True)
class FleetDir:
    root: Path

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def signing_key(self) -> Path:
        return self.root / "signing.key"

    @property
    def signing_pub(self) -> Path:
        return self.root / "signing.pub"

    @property
    def central_key(self) -> Path:
        return self.root / "central.key"

    @property
    def central_cert(self) -> Path:
        return self.root / "central.crt"

    def device_dir(self, site: str, device_id: str) -> Path:
        return self.root / "devices" / site / device_id

    def devices(self) -> list[tuple[str, str]]:
        """(site, device id) of every device provisioned from the fleet (those with a folder), sorted."""
        return sorted((p.parent.name, p.name) for p in self.root.glob("devices/*/*") if p.is_dir())

    def require(self) -> FleetDir:
        """Self, if `edge fleet init` made it; else `FleetDirError` saying what to run."""
        missing = [p.name for p in (self.ca_key, self.ca_cert, self.signing_key, self.signing_pub) if not p.is_file()]
        if missing:
            raise FleetDirError(
                f"{self.root} is not a fleet folder (missing {', '.join(missing)}): create one with edge fleet init"
            )
        return self

    def require_device(self, site: str, device_id: str) -> Path:
        """The device's folder, if it was provisioned from this fleet."""
        folder = self.device_dir(site, device_id)
        if not (folder / "box.pub").is_file():
            raise FleetDirError(
                f"device {site}/{device_id} was not provisioned from fleet {self.root} (no {folder / 'box.pub'})"
            )
        return folder


def parse_device(text: str) -> tuple[str, str]:
    """`SITE/DEVICE` as the central commands take it -> (site, device_id)."""
    site, sep, device = text.partition("/")
    if not sep or not site or not device or "/" in device:
        raise FleetDirError(f"device {text!r} is not SITE/DEVICE (e.g. north/pi-01)")
    return site, device
