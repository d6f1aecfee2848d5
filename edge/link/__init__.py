"""Link to the centre: payload models, durable outbox, MQTT client.

Knows nothing of vision or device code; imports only the standard library, pydantic and paho.
"""

from edge.link.base import Link, MessageHandler
from edge.link.broker_url import BrokerAddress, parse_broker_url
from edge.link.errors import BrokerUrlError, LinkError, OutboxError
from edge.link.mqtt import MqttLink, MqttOptions, probe_broker
from edge.link.outbox import Outbox, OutboxRow
from edge.link.payloads import (
    ConfigReported,
    MatchEvent,
    Payload,
    StatsPayload,
    StatusPayload,
    Topics,
    Versions,
    new_event_id,
    utc_now,
)

__all__ = [
    "BrokerAddress",
    "BrokerUrlError",
    "ConfigReported",
    "Link",
    "LinkError",
    "MatchEvent",
    "MessageHandler",
    "MqttLink",
    "MqttOptions",
    "Outbox",
    "OutboxError",
    "OutboxRow",
    "Payload",
    "StatsPayload",
    "StatusPayload",
    "Topics",
    "Versions",
    "new_event_id",
    "parse_broker_url",
    "probe_broker",
    "utc_now",
]
