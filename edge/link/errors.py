"""Errors raised by `edge.link`, one base class so the CLI can catch them together."""

from __future__ import annotations


class LinkError(Exception):
    """The link to the broker cannot work as configured (unreachable, refused, bad URL)."""


class BrokerUrlError(LinkError, ValueError):
    """A broker URL that is not `mqtt://host[:port]` or `mqtts://host[:port]`."""


class OutboxError(LinkError):
    """The outbox file cannot be used; the message names the path and the file is left as is."""
