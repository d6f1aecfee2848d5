"""The three verbs the rest of the device uses to talk to the centre (after Frigate's
`BaseCommunicator`): the loop depends on this, not on paho."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from edge.link.payloads import Payload

MessageHandler = Callable[[str, bytes], None]
"""Called with (topic, payload) on the network thread: enqueue and return, never decide."""


class Link(Protocol):
    def publish(self, topic_suffix: str, payload: Payload, *, retain: bool = False) -> str:
        """Queue `payload` durably for `<root>/<topic_suffix>`; returns its message id."""
        ...

    def subscribe(self, topic_suffix: str, handler: MessageHandler) -> None:
        """Deliver messages on `<root>/<topic_suffix>` to `handler`, across reconnects."""
        ...

    def stop(self) -> None:
        """Say `offline`, disconnect; what was not acknowledged is sent after the next start."""
        ...
