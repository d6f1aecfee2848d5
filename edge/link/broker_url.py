"""Broker URLs: `mqtt://host[:port]` (plain, 1883) and `mqtts://host[:port]` (TLS, 8883)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from edge.link.errors import BrokerUrlError

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where the broker listens and whether the connection uses TLS."""

    host: str
    port: int
    tls: bool

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """Parse a broker URL; anything but a bare host and optional port is refused.

    Credentials in the URL are refused on purpose: URLs end up in logs and `config show`,
    so the username and password are separate options.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as e:
        raise BrokerUrlError(f"broker URL {url!r}: {e}") from e
    if parts.scheme not in DEFAULT_PORTS:
        raise BrokerUrlError(
            f"broker URL {url!r}: scheme must be mqtt:// (plain, port 1883) or "
            f"mqtts:// (TLS, port 8883), not {parts.scheme or 'missing'!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise BrokerUrlError(
            f"broker URL for host {parts.hostname!r}: put the username and password in the "
            "mqtt username/password options, not in the URL"
        )
    if not parts.hostname:
        raise BrokerUrlError(f"broker URL {url!r}: no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise BrokerUrlError(f"broker URL {url!r}: only scheme://host[:port] is allowed")
    if port == 0:
        raise BrokerUrlError(f"broker URL {url!r}: port 0 is not a broker port")
    return BrokerAddress(
        host=parts.hostname,
        port=port if port is not None else DEFAULT_PORTS[parts.scheme],
        tls=parts.scheme == "mqtts",
    )
