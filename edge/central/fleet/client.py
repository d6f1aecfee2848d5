"""The central tools' MQTT: one short connection with the fleet's `central` certificate.

`edge fleet config set`, `gallery push` and `status` each connect, do one thing, and leave.
"""

from __future__ import annotations

import time

import paho.mqtt.client as paho

from edge.central.fleet.folder import FleetDir
from edge.link import LinkError, MqttOptions
from edge.link.mqtt import close_quietly, configured_client, connect_once

CLIENT_ID = "edge-central"


def central_options(fleet: FleetDir, broker_url: str) -> MqttOptions:
    """Options for `broker_url`; an mqtts:// broker is reached with the fleet's central certificate."""
    options = MqttOptions.from_url(broker_url)
    if not options.tls:
        return options
    return MqttOptions.from_url(
        broker_url, ca_certs=str(fleet.ca_cert), certfile=str(fleet.central_cert), keyfile=str(fleet.central_key)
    )


def _connected(options: MqttOptions, timeout: float) -> paho.Client:
    """A client connected to the broker, its network thread running; `LinkError` (one line) when
    the broker cannot be reached or refuses. Leave with `close_quietly`."""
    client = configured_client(options, f"{CLIENT_ID}-{time.monotonic_ns() % 10**9}")
    connect_once(client, options, timeout)
    client.loop_start()
    return client


def publish(options: MqttOptions, topic: str, payload: str, timeout: float = 10.0, retain: bool = False) -> None:
    """Publish one message with QoS 1 and wait for the broker's acknowledgement."""
    client = _connected(options, timeout)
    try:
        info = client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise LinkError(f"MQTT broker {options.address} did not acknowledge {topic} within {timeout:g} s")
    finally:
        close_quietly(client)


def retained(options: MqttOptions, topic_filter: str, settle_s: float = 1.0, timeout: float = 10.0) -> dict[str, bytes]:
    """Every retained message under `topic_filter`: {topic: payload}, collected until `settle_s`
    seconds pass without a new one (the broker sends retained messages right after SUBACK)."""
    client = _connected(options, timeout)
    found: dict[str, bytes] = {}
    last = [time.monotonic()]

    def on_message(client, userdata, message: paho.MQTTMessage) -> None:
        if message.retain:
            found[message.topic] = bytes(message.payload)
            last[0] = time.monotonic()

    client.on_message = on_message
    try:
        client.subscribe(topic_filter, qos=1)
        last[0] = time.monotonic()
        while time.monotonic() - last[0] < settle_s:
            time.sleep(0.05)
    finally:
        close_quietly(client)
    return dict(found)
