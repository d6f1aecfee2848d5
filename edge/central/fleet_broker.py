"""The central broker's side of a fleet: its certificate, a Mosquitto TLS listener and the ACL.

The listener admits only clients with a certificate from the fleet CA and names each by its CN;
the pattern ACL then gives a device (CN "<site>/<device_id>", so `%u` is its topic root) its own
topics and nothing else, and gives the central tools (CN "central") every device's.
`firmware-config/mosquitto.conf` and `firmware-config/acl` are these texts as rendered for the
default port and folder (a test keeps them equal).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from edge.central.fleet_dir import CENTRAL_CN, FleetDir, FleetDirError
from edge.central.fleet_pki import Authority, write_certificate
from edge.link.signed import write_private_key

DEFAULT_PORT = 8883
DEFAULT_INSTALLED_AT = Path("/etc/mosquitto/edge")
CONF_NAME = "edge.conf"

ACL = f"""\
# Mosquitto ACL written by `edge fleet broker-config`. A client's user name is its certificate's
# CN: a device's is "<site>/<device_id>", so edge/%u/ is its own topic root.
# A device writes only its own status, match, stats and config/reported, and reads only its own
# config/set and gallery/set.
pattern write edge/%u/status
pattern write edge/%u/match
pattern write edge/%u/stats
pattern write edge/%u/config/reported
pattern read edge/%u/config/set
pattern read edge/%u/gallery/set
# Home Assistant discovery (off by default): node id = client id (%c, "edge-<site>-<device_id>").
# The client id is the device's own choice, so this fences discovery configs less tightly than
# the certificate fences edge/: a device could announce entities under another node id.
pattern write homeassistant/+/%c/+/config

# The central tools (CN "{CENTRAL_CN}") read everything under edge/ and command any device.
user {CENTRAL_CN}
topic read edge/#
topic write edge/+/+/config/set
topic write edge/+/+/gallery/set
"""


def listener_conf(port: int = DEFAULT_PORT, installed_at: Path = DEFAULT_INSTALLED_AT) -> str:
    """The Mosquitto config for the fleet's TLS listener, its files read from `installed_at`."""
    return f"""\
# Mosquitto: the edge fleet's TLS listener, written by `edge fleet broker-config`.
# Clients need a certificate from the fleet CA; its CN is the MQTT user name the ACL fences.
# Keep the broker's persistence on (Debian's mosquitto.conf has `persistence true`): queued
# QoS 1 commands then survive a broker restart.
listener {port}
cafile {installed_at / "ca.crt"}
certfile {installed_at / "broker.crt"}
keyfile {installed_at / "broker.key"}
require_certificate true
use_identity_as_username true
allow_anonymous false
acl_file {installed_at / "acl"}
"""


def write_broker_config(
    fleet: FleetDir,
    out: Path,
    hosts: Sequence[str],
    ips: Sequence[str] = (),
    port: int = DEFAULT_PORT,
    installed_at: Path = DEFAULT_INSTALLED_AT,
) -> list[Path]:
    """Write the broker's key and certificate (SANs: `hosts` and `ips`), the CA, the ACL and the
    listener config into `out`; the paths written."""
    if not hosts and not ips:
        raise FleetDirError("name the broker: at least one --host NAME or --ip ADDRESS (they become its SANs)")
    if not 0 < port < 65536:
        raise FleetDirError(f"port {port} is not a TCP port")
    authority = Authority.load(fleet)
    key, cert = authority.issue([*hosts, *ips][0], "server", dns=hosts, ips=ips)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / n for n in ("ca.crt", "broker.crt", "broker.key", "acl", CONF_NAME)]
    shutil.copyfile(fleet.ca_cert, paths[0])
    write_certificate(paths[1], cert)
    write_private_key(paths[2], key)
    paths[3].write_text(ACL)
    paths[4].write_text(listener_conf(port, installed_at))
    return paths
