"""The central broker's side of a fleet: its certificate, Mosquitto's two TLS listeners and the ACL.

Both listeners admit only clients with a certificate from the fleet CA and name each by its CN;
the pattern ACL then gives a device (CN "<site>/<device_id>", so `%u` is its topic root) its own
topics and nothing else, and gives the central tools (CN "central") every device's.

Devices connect to the device listener, which also makes each client's id its CN
(`use_username_as_clientid`): a device cannot take over another's session (which would
disconnect it and publish its `offline` will). The central tools share one certificate and run
several clients at once (the collector's persistent session, `fleet status`, `config set`), so
they have their own listener where client ids stay theirs; there any certificate could pick any
client id, so it listens on loopback unless told otherwise.

The broker also keeps a persistent session's messages while the collector is away or cannot
store them (its database is down): `QueuePlan` sizes that queue for a stated outage of a stated
fleet. `firmware-config/mosquitto.conf` and `firmware-config/acl` are these texts as rendered
with the defaults (a test keeps them equal).
"""

from __future__ import annotations

import ipaddress
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.central.fleet.folder import CENTRAL_CN, FleetDir, FleetDirError
from edge.central.fleet.pki import Authority, write_certificate
from edge.config import HomeAssistantConfig, MqttConfig, StatsConfig
from edge.link.homeassistant import node_id
from edge.link.payloads import Topics
from edge.link.signed import write_private_key

DEFAULT_PORT = 8883
DEFAULT_CENTRAL_PORT = 8884
DEFAULT_CENTRAL_BIND = "127.0.0.1"
DEFAULT_INSTALLED_AT = Path("/etc/mosquitto/edge")
CONF_NAME = "edge.conf"

# What one device sends per hour with its shipped settings, for sizing the queue.
STATS_WINDOW_S: float = StatsConfig.model_fields["window_s"].default
STATUS_REFRESH_S: int = MqttConfig.model_fields["keepalive_s"].default  # online status, once per keepalive
ALERTS_PER_HOUR = 60  # planned: one a minute all day (the trial day of scripts/bench_collect.py averages 3)
DEFAULT_DEVICES = 200
DEFAULT_OUTAGE_HOURS = 24.0
QUEUED_MESSAGE_BYTES = 1000  # broker memory per queued message (measured 0.98 KB with a 600-byte payload)
# The broker's outgoing window for MQTT 3.1.1 subscribers, and the Receive Maximum it announces to
# MQTT 5 publishers: at least what a device keeps in flight (configured_client: 14). MQTT 5
# subscribers (the collector) ask for their own window.
MAX_INFLIGHT = 20

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

# The central tools (CN "{CENTRAL_CN}") read everything under edge/ and command any device.
user {CENTRAL_CN}
topic read edge/#
topic write edge/+/+/config/set
topic write edge/+/+/gallery/set

# Home Assistant discovery (off by default): each device writes only the configs of its own node
# id, "edge-<site>-<device_id>". The device listener makes a device's client id its CN, which has
# a slash, so no pattern can spell that node id: one entry per device provisioned when this ACL
# was written. Write it again after provisioning more.
"""


@dataclass(frozen=True)
class QueuePlan:
    """The messages the broker keeps for one subscriber's session beyond those in flight: all that
    `devices` send in `outage_hours`, so a collector that is away or cannot store loses none."""

    devices: int = DEFAULT_DEVICES
    outage_hours: float = DEFAULT_OUTAGE_HOURS

    def __post_init__(self) -> None:
        if self.devices < 1 or not self.outage_hours > 0:
            raise FleetDirError(
                f"the queue needs at least 1 device and an outage over 0 h, not --devices {self.devices} "
                f"--outage-hours {self.outage_hours:g}"
            )

    @property
    def per_device_hour(self) -> int:
        return round(3600 / STATS_WINDOW_S + 3600 / STATUS_REFRESH_S + ALERTS_PER_HOUR)

    @property
    def messages(self) -> int:
        return math.ceil(self.per_device_hour * self.devices * self.outage_hours)

    def comment(self) -> str:
        """The arithmetic, for the config's comments."""
        stats, status = 3600 / STATS_WINDOW_S, 3600 / STATUS_REFRESH_S
        memory_mb = self.messages * QUEUED_MESSAGE_BYTES / 1e6
        return f"""\
# Queue: while the collector is away or cannot store (its database is down), the broker keeps
# what the fleet sends for its persistent session, beyond what the collector has in flight.
# Sized for {self.devices:,} devices and an outage of {self.outage_hours:g} h. Per device and hour:
#   {stats:g} stats windows (one per {STATS_WINDOW_S:g} s)
#   + {status:g} online statuses (one per {STATUS_REFRESH_S} s keepalive; expired ones count until delivered)
#   + {ALERTS_PER_HOUR} alerts (planned) = {self.per_device_hour} messages
#   {self.per_device_hour} x {self.devices:,} devices x {self.outage_hours:g} h = {self.messages:,} messages
# Beyond that, Mosquitto drops the session's messages ("Outgoing messages are being dropped").
# Full, the queue takes about {memory_mb:,.0f} MB of broker memory (about 1 KB a message), and as
# much again for any other persistent session subscribed to edge/#. No max_queued_bytes (the
# count bounds it) and no memory_limit (past it Mosquitto drops outgoing messages as well).
"""


@dataclass(frozen=True)
class Listeners:
    """Where the two listeners listen, and where their files are on the broker host."""

    port: int = DEFAULT_PORT
    bind: str | None = None  # None: every interface
    central_port: int = DEFAULT_CENTRAL_PORT
    central_bind: str = DEFAULT_CENTRAL_BIND
    installed_at: Path = DEFAULT_INSTALLED_AT

    def __post_init__(self) -> None:
        for port in (self.port, self.central_port):
            if not 0 < port < 65536:
                raise FleetDirError(f"port {port} is not a TCP port")
        if self.port == self.central_port:
            raise FleetDirError(f"the devices' and the central tools' listeners need two ports, not {self.port} twice")
        if self.bind is not None:
            _ip("--bind", self.bind)
        if _ip("--central-bind", self.central_bind).is_unspecified:
            raise FleetDirError(
                f"--central-bind {self.central_bind}: the central listener lets any fleet certificate pick its "
                "client id, so devices must not reach it; bind it to loopback or a management address"
            )


def _ip(option: str, address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        raise FleetDirError(f"{option} {address!r} is not an IP address") from None


def _tls(installed_at: Path) -> str:
    """A listener's TLS, authentication and ACL lines (the same for both)."""
    return f"""\
cafile {installed_at / "ca.crt"}
certfile {installed_at / "broker.crt"}
keyfile {installed_at / "broker.key"}
require_certificate true
use_identity_as_username true
allow_anonymous false
acl_file {installed_at / "acl"}"""


def listener_conf(listeners: Listeners = Listeners(), queue: QueuePlan = QueuePlan()) -> str:
    """The Mosquitto config for the fleet's listeners and queue."""
    device_listener = f"listener {listeners.port}" + (f" {listeners.bind}" if listeners.bind else "")
    tls = _tls(listeners.installed_at)
    return f"""\
# Mosquitto: the edge fleet's TLS listeners, written by `edge fleet broker-config`.
# Clients need a certificate from the fleet CA; its CN is the MQTT user name the ACL fences.
# Keep the broker's persistence on (Debian's mosquitto.conf has `persistence true`): queued
# QoS 1 messages then survive a broker restart.

{queue.comment()}max_queued_messages {queue.messages}
max_inflight_messages {MAX_INFLIGHT}
# Each listener has its own authentication and ACL settings (global: other listeners of this
# broker need their own allow_anonymous and acl_file).
per_listener_settings true

# Devices. A client's id is its CN: a device cannot take over another device's session.
{device_listener}
{tls}
use_username_as_clientid true

# The central tools (collector, fleet status, config set, gallery push): one certificate,
# several clients, each with its own client id. Any certificate may pick any client id here,
# so devices must not reach this listener.
listener {listeners.central_port} {listeners.central_bind}
{tls}
"""


def acl(devices: Sequence[Topics] = ()) -> str:
    """The ACL, with the Home Assistant discovery entries of `devices`."""
    prefix = HomeAssistantConfig.model_fields["discovery_prefix"].default
    entries = [f"user {t.site}/{t.device_id}\ntopic write {prefix}/+/{node_id(t)}/+/config\n" for t in devices]
    return ACL + "".join(entries)


def provisioned(fleet: FleetDir) -> list[Topics]:
    """Every device provisioned from the fleet (those with a folder there), sorted."""
    return [Topics(site, device) for site, device in fleet.devices()]


def write_broker_config(
    fleet: FleetDir,
    out: Path,
    hosts: Sequence[str],
    ips: Sequence[str] = (),
    listeners: Listeners = Listeners(),
    queue: QueuePlan = QueuePlan(),
) -> list[Path]:
    """Write the broker's key and certificate (SANs: `hosts`, `ips` and the central listener's
    address), the CA, the ACL and the listeners' config into `out`; the paths written."""
    if not hosts and not ips:
        raise FleetDirError("name the broker: at least one --host NAME or --ip ADDRESS (they become its SANs)")
    authority = Authority.load(fleet)
    sans = [*ips] if listeners.central_bind in ips else [*ips, listeners.central_bind]
    key, cert = authority.issue([*hosts, *ips][0], "server", dns=hosts, ips=sans)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / n for n in ("ca.crt", "broker.crt", "broker.key", "acl", CONF_NAME)]
    shutil.copyfile(fleet.ca_cert, paths[0])
    write_certificate(paths[1], cert)
    write_private_key(paths[2], key)
    paths[3].write_text(acl(provisioned(fleet)))
    paths[4].write_text(listener_conf(listeners, queue))
    return paths
