"""A fleet's broker for tests: Mosquitto with the TLS listeners, queue and ACL `edge fleet broker-config`
writes, and MQTT 5 clients that log in with a fleet certificate and report what the broker said."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge.cli import main
from local_broker import Broker, free_port


def fleet_broker(
    broker_factory: Callable[..., Broker],
    fleet: Path,
    out: Path,
    port: int,
    persistence: bool = False,
    central_port: int | None = None,
) -> Broker:
    """`edge fleet broker-config` for localhost and 127.0.0.1, run by a real Mosquitto: the devices'
    listener on 127.0.0.1:`port`, the central tools' on 127.0.0.1:`central_port` (any free one)."""
    args = ["fleet", "broker-config", "--fleet", str(fleet), "--host", "localhost", "--ip", "127.0.0.1"]
    args += ["--port", str(port), "--bind", "127.0.0.1", "--central-port", str(central_port or free_port())]
    assert main([*args, "--installed-at", str(out), "--out", str(out)]) == 0
    return broker_factory(listener=(out / "edge.conf").read_text(), port=port, persistence=persistence)


class TlsClient:
    """An MQTT 5 client with a client certificate; waits for each acknowledgement and keeps it."""

    def __init__(
        self, port: int, ca: Path, cert: Path, key: Path, client_id: str = "", host: str = "localhost", timeout=10.0
    ):
        self._cond = threading.Condition()
        self._acks: dict[int, list[str]] = {}
        self.connack: str | None = None
        self.messages: list[paho.MQTTMessage] = []
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        self._client.tls_set(ca_certs=str(ca), certfile=str(cert), keyfile=str(key))
        self._client.on_connect = self._on_connect
        self._client.on_publish = lambda c, u, mid, reason, p: self._ack(mid, [str(reason)])
        self._client.on_subscribe = lambda c, u, mid, reasons, p: self._ack(mid, [str(r) for r in reasons])
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.loop_start()
        with self._cond:
            self._cond.wait_for(lambda: self.connack is not None, timeout=timeout)
        if self.connack != "Success":
            self.stop()
            raise ConnectionRefusedError(f"broker on {host}:{port} did not accept {cert}: {self.connack}")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._cond:
            self.connack = str(reason_code)
            self._cond.notify_all()

    def _ack(self, mid: int, reasons: list[str]) -> None:
        with self._cond:
            self._acks[mid] = reasons
            self._cond.notify_all()

    def _on_message(self, client, userdata, message: paho.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    def _wait_ack(self, mid: int) -> list[str]:
        with self._cond:
            assert self._cond.wait_for(lambda: mid in self._acks, timeout=10), f"no acknowledgement for {mid}"
            return self._acks[mid]

    def publish(self, topic: str, payload: str = "{}", retain: bool = False) -> str:
        """Publish with QoS 1: the PUBACK's reason ('Success', 'No matching subscribers', 'Not authorized')."""
        return self._wait_ack(self._client.publish(topic, payload, qos=1, retain=retain).mid)[0]

    def subscribe(self, topic: str) -> str:
        """Subscribe with QoS 1: the SUBACK's reason ('Granted QoS 1' or a refusal)."""
        return self._wait_ack(self._client.subscribe(topic, qos=1)[1])[0]

    def topics(self) -> list[str]:
        with self._cond:
            return [m.topic for m in self.messages]

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout: float = 10.0) -> bool:
        """Wait until `predicate(topics received so far)` holds; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate([m.topic for m in self.messages]), timeout)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
