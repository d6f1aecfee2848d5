"""A real Mosquitto for tests, and a subscriber that collects what it hears.

Fixtures: `broker` (a running anonymous broker), `broker_factory` (brokers with options:
persistence, a password file, an ACL), `subscriber_factory` (collecting paho clients). All
are stopped at teardown. A `Broker` can `stop()` and `start()` again on the same port, or
`pause()`/`resume()` (SIGSTOP/SIGCONT). Tests skip when mosquitto is not installed.

Use them with `pytest_plugins = ["support_broker"]` (in tests/conftest.py or a test module).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from local_broker import MOSQUITTO, MOSQUITTO_PASSWD, Broker, free_port  # noqa: F401 (free_port re-exported)


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    dup: bool


class Subscriber:
    """A paho client that records every message it receives, thread-safe.

    `persistent=True` uses a fixed client id and a persistent session (MQTT 3.1.1
    clean_session=False), so with a persistent broker nothing is missed while either side
    restarts. `tls=(ca, cert, key)` connects to a TLS listener with that client certificate
    (e.g. the fleet's central one, for a broker made by `edge fleet broker-config`).
    """

    def __init__(
        self,
        port: int,
        topics: list[str],
        *,
        client_id: str = "",
        persistent: bool = False,
        tls: tuple[str, str, str] | None = None,
    ) -> None:
        self._topics = topics
        self._cond = threading.Condition()
        self._messages: list[Received] = []
        self._subscribed = threading.Event()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311, clean_session=not persistent
        )
        self._client.reconnect_delay_set(min_delay=1, max_delay=1)
        if tls is not None:
            ca, cert, key = tls
            self._client.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.connect_async("127.0.0.1", port, keepalive=30)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            self.stop()
            raise RuntimeError(f"test subscriber could not subscribe on port {port}")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code == 0:
            client.subscribe([(t, 1) for t in self._topics])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self._subscribed.set()

    def _on_message(self, client, userdata, message: paho.MQTTMessage) -> None:
        with self._cond:
            self._messages.append(Received(message.topic, message.payload, bool(message.retain), bool(message.dup)))
            self._cond.notify_all()

    def messages(self, topic: str | None = None) -> list[Received]:
        with self._cond:
            return [m for m in self._messages if topic is None or m.topic == topic]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 10.0) -> bool:
        """Wait until `predicate(all messages so far)` holds; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self._messages), timeout)

    def publish(self, topic: str, payload: str | bytes) -> None:
        self._client.publish(topic, payload, qos=1)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def _require_mosquitto() -> None:
    if not os.access(MOSQUITTO, os.X_OK):
        pytest.skip(f"mosquitto not installed at {MOSQUITTO} (apt-get install mosquitto)")


@pytest.fixture
def broker_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Broker]]:
    """`make(persistence=False, users=None, acl=None, listener=None, port=None) -> Broker`, started;
    stopped at teardown.

    `users` maps user names to passwords (anonymous access is then off); `acl` is the text of
    a Mosquitto ACL file; `listener` replaces the anonymous loopback listener on `port` (e.g. the
    TLS listener `edge fleet broker-config` writes).
    """
    _require_mosquitto()
    brokers: list[Broker] = []

    def make(
        *,
        persistence: bool = False,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        listener: str | None = None,
        port: int | None = None,
    ) -> Broker:
        if users and not os.access(MOSQUITTO_PASSWD, os.X_OK):
            pytest.skip(f"mosquitto_passwd not installed at {MOSQUITTO_PASSWD}")
        workdir = tmp_path_factory.mktemp("mosquitto")
        b = Broker(workdir, persistence=persistence, users=users, acl=acl, listener=listener, port=port)
        brokers.append(b)
        b.start()
        return b

    yield make
    for b in brokers:
        b.stop()


@pytest.fixture
def broker(broker_factory: Callable[..., Broker]) -> Broker:
    """A running anonymous Mosquitto without persistence on a free loopback port."""
    return broker_factory()


@pytest.fixture
def subscriber_factory() -> Iterator[Callable[..., Subscriber]]:
    """`make(port, topics, client_id="", persistent=False, tls=None) -> Subscriber`; stopped at teardown."""
    subscribers: list[Subscriber] = []

    def make(
        port: int,
        topics: list[str],
        *,
        client_id: str = "",
        persistent: bool = False,
        tls: tuple[str, str, str] | None = None,
    ) -> Subscriber:
        s = Subscriber(port, topics, client_id=client_id, persistent=persistent, tls=tls)
        subscribers.append(s)
        return s

    yield make
    for s in subscribers:
        s.stop()
