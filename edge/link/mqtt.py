"""The MQTT link: owns the paho client, drains the outbox, keeps the retained status true.

Threads:
- paho's network thread (`paho-mqtt-client-<client_id>`, from `loop_start`) runs the
  callbacks. They only translate and hand over: record state, enqueue acknowledgements,
  call a subscriber's handler. Every one catches and logs its own exceptions, because one
  that escapes ends paho's thread and with it all reconnection, silently.
- `mqtt-outbox` hands paho at most `max_in_flight` outbox rows at a time and settles their
  acknowledgements. It alone owns the mid -> message_id map, so no lock is shared with paho:
  paho calls `on_publish` while holding its internal `_out_message_mutex`, and `publish()`
  takes that same mutex, so a lock held across `publish()` and taken in `on_publish`
  would deadlock. `on_publish` therefore only queues the mid; since the thread that records
  a mid is the one that later reads the queue, an early PUBACK is never missed.

Status after a broker crash: the `offline` last will is published by the broker when the
device's connection ends without a DISCONNECT. If the broker crashes and the device dies before
it can reconnect, there is no connection left to end, and a broker that restarts from its
persistence file still holds the retained `online`. A persisted session with a will delay does
not help (Mosquitto 2.0 does not publish a will restored from its persistence file; measured),
so with MQTT 5 the retained `online`/`degraded` status carries a message expiry
(`status_expiry_s`, 3 keepalives by default) and the device republishes it three times per
expiry while connected: a live device always has a fresh status, a dead one's expires and
subscribers find none. `offline` never expires. MQTT 3.1.1 has no message expiry: there a
crashed broker can keep a dead device's `online`.

Delivery: paho keeps unacknowledged QoS 1 messages in memory and resends them (DUP) after a
reconnect, so in-flight rows stay in flight across reconnects; after a restart the outbox
resends every row that was never acknowledged. Receivers de-duplicate by message id.
"""

from __future__ import annotations

import logging
import queue
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.link.base import MessageHandler
from edge.link.broker_url import BrokerAddress, parse_broker_url
from edge.link.errors import LinkError
from edge.link.outbox import Outbox
from edge.link.payloads import Payload, Scalar, StatusPayload, Topics, Versions, new_event_id, utc_now
from edge.service import ServiceThread

log = logging.getLogger(__name__)
_PAHO_LOG = logging.getLogger(f"{__name__}.paho")  # paho's own lines, under ours


@dataclass(frozen=True)
class MqttOptions:
    """How to reach the broker. `from_url` builds one from `mqtt://` / `mqtts://` URLs."""

    host: str
    port: int = 1883
    tls: bool = False
    client_id: str | None = None  # None: "edge-<site>-<device_id>"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_certs: str | None = None  # CA bundle for TLS; None: the system's
    certfile: str | None = None  # client certificate (TLS client auth)
    keyfile: str | None = None
    keepalive: int = 60  # seconds between pings when idle
    protocol: Literal["5", "3.1.1"] = "5"
    max_in_flight: int = 10  # outbox rows handed to paho and not yet acknowledged
    reconnect_max_delay: int = 60  # seconds; paho doubles the delay from 1 s up to this
    status_expiry_s: int | None = None  # MQTT 5 expiry of the retained online status; None: 3 keepalives

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.port < 65536:
            problems.append(f"port {self.port} is not in 1..65535")
        if self.keepalive < 5:
            problems.append(f"keepalive {self.keepalive} s is below 5 s")
        if self.max_in_flight < 1:
            problems.append("max_in_flight must be at least 1")
        if self.reconnect_max_delay < 1:
            problems.append("reconnect_max_delay must be at least 1 s")
        if self.status_expiry_s is not None and self.status_expiry_s < 3:
            problems.append("status_expiry_s must be at least 3 s")
        if self.password is not None and self.username is None:
            problems.append("a password needs a username")
        if not self.tls and (self.ca_certs or self.certfile or self.keyfile):
            problems.append("TLS files given for a plain connection: use an mqtts:// URL")
        if self.keyfile and not self.certfile:
            problems.append("keyfile given without certfile")
        if problems:
            raise LinkError(f"MQTT options for {self.address}: " + "; ".join(problems))

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MqttOptions:
        """Options from a broker URL plus keyword options (username, client_id, ...)."""
        address = parse_broker_url(url)
        return cls(host=address.host, port=address.port, tls=address.tls, **options)

    @property
    def address(self) -> BrokerAddress:
        return BrokerAddress(self.host, self.port, self.tls)

    @property
    def status_expiry(self) -> int:
        return self.status_expiry_s or 3 * self.keepalive


def configured_client(o: MqttOptions, client_id: str) -> paho.Client:
    """A paho client set up from the options (protocol, credentials, TLS), no callbacks yet."""
    if o.protocol == "5":
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    else:
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311, clean_session=True
        )
    client.enable_logger(_PAHO_LOG)
    client.suppress_exceptions = True  # second line of defence: callbacks catch already
    if o.username is not None:
        client.username_pw_set(o.username, o.password)
    if o.tls:
        try:
            client.tls_set(ca_certs=o.ca_certs, certfile=o.certfile, keyfile=o.keyfile)
        except OSError as e:  # ssl.SSLError included: unreadable or invalid files
            files = ", ".join(
                f"{k}={v}" for k, v in (("ca_certs", o.ca_certs), ("certfile", o.certfile), ("keyfile", o.keyfile)) if v
            )
            raise LinkError(f"TLS setup for MQTT broker {o.address} ({files}): {e}") from e
    # Room for the status messages beside the outbox rows, so paho never queues a row
    # behind its in-flight window.
    client.max_inflight_messages_set(o.max_in_flight + 4)
    client.reconnect_delay_set(min_delay=1, max_delay=o.reconnect_max_delay)
    return client


def connect_once(client: paho.Client, options: MqttOptions, timeout: float) -> None:
    """Connect `client` and wait for the broker's answer on the caller's thread, once, no retry.

    A failure raises `LinkError`, one line that says what happened and, where the usual cause is
    known, what to do (`_hint`): the tools and the device's start stop on it at once instead of
    retrying against a broker that cannot let them in. paho's log stays quiet meanwhile, its
    errors kept for that line: "failed to receive on socket" at ERROR, once per retry, is how
    plain MQTT sent to a TLS listener looked before. On success the client is connected with no
    network thread yet (`loop_start` next); on failure it is closed. Replaces `on_connect`.
    """
    client.connect_timeout = timeout
    verdict: list[paho.ReasonCode] = []
    errors: list[str] = []

    def on_log(client: paho.Client, userdata: Any, level: int, text: str) -> None:
        if level == paho.MQTT_LOG_ERR:
            errors.append(text)

    client.on_connect = lambda client, userdata, flags, reason_code, properties: verdict.append(reason_code)
    client.on_log = on_log
    client.disable_logger()
    try:
        try:
            client.connect(options.host, options.port, options.keepalive)
        except OSError as e:
            raise LinkError(
                f"cannot connect to MQTT broker {options.address}: {type(e).__name__}: {e}{_hint(options, e)}"
            ) from e
        deadline = time.monotonic() + timeout
        closed = False
        while not verdict and not closed and time.monotonic() < deadline:
            closed = client.loop(0.1) != MQTTErrorCode.MQTT_ERR_SUCCESS
        if verdict and not verdict[0].is_failure:
            return
        client.disconnect()
        if verdict:
            raise LinkError(f"MQTT broker {options.address} refused the connection: {verdict[0]}")
        if closed:
            why = f" ({errors[-1]})" if errors else ""
            raise LinkError(
                f"MQTT broker {options.address} closed the connection before answering CONNECT{why}"
                f"{_hint(options, None)}"
            )
        raise LinkError(f"MQTT broker {options.address} did not answer CONNECT within {timeout:g} s")
    finally:
        client.on_log = None
        client.enable_logger(_PAHO_LOG)


def _hint(options: MqttOptions, error: OSError | None) -> str:
    """What to check when connecting failed with `error` (None: the broker closed the connection
    before answering): the scheme that does not match the port, or the certificates."""
    if not options.tls:
        return ": if that port is a TLS listener, use mqtts://" if not isinstance(error, ConnectionRefusedError) else ""
    if isinstance(error, ssl.SSLCertVerificationError):
        ca = f"the CA in {options.ca_certs}" if options.ca_certs else "a CA this system trusts (no CA file was given)"
        return f": the broker's certificate is not signed by {ca}"
    if isinstance(error, (ssl.SSLError, ConnectionResetError)):  # a plain listener resets a TLS handshake
        return ": if that port is a plain listener, use mqtt://"
    if error is None and options.certfile is None:
        return ": a TLS listener that wants a client certificate closes the connection without one"
    return ""


def probe_broker(options: MqttOptions, client_id: str, timeout: float) -> None:
    """Connect once and leave: is the broker there, and does it let us in? Raises `LinkError`.

    Used before the device creates any state, so a broker that is unreachable at start stops
    the start without a file written. Publishes nothing. Runs paho's loop on the caller's
    thread: with a network thread, `disconnect()` closes the socket under it, and that thread
    then logs "Client is not connected" at ERROR on a perfectly normal start.
    """
    client = configured_client(options, f"{client_id}-probe")
    connect_once(client, options, timeout)
    client.disconnect()


def close_quietly(client: paho.Client) -> None:
    """Disconnect and stop paho's network thread, without a misleading ERROR.

    paho 2.2's loop thread logs "Client is not connected" at ERROR once the socket closes after a
    requested disconnect: noise, not news, so its logger goes quiet first. (Stopping the loop
    thread first would avoid it, but that thread does not end while a packet waits to be written,
    e.g. to a broker that stopped answering.)
    """
    client.disable_logger()
    client.disconnect()
    client.loop_stop()


class MqttLink:
    """The device's one connection to the broker.

    `publish` writes to the durable outbox and returns at once, connected or not; the
    `mqtt-outbox` thread sends. Status is `online` (retained) from every connect, `degraded`
    with a reason instead while the outbox's disk refuses writes, `offline` (retained) from
    `stop()` or, if the process dies, from the broker as the last will.
    """

    def __init__(self, options: MqttOptions, topics: Topics, outbox: Outbox, status: StatusPayload) -> None:
        if (status.site, status.device_id) != (topics.site, topics.device_id):
            raise ValueError(
                f"status is for {status.site}/{status.device_id}, topics for {topics.site}/{topics.device_id}"
            )
        self.options = options
        self.topics = topics
        self._outbox = outbox
        self._status = status
        self.client_id = options.client_id or f"edge-{topics.site}-{topics.device_id}"
        self._client = self._make_client()
        self._subscriptions: set[str] = set()
        self._announcements: dict[str, str] = {}  # topic -> payload, retained at every connect
        self._lock = threading.Lock()  # guards _subscriptions and _announcements against on_connect's snapshot
        self._connected = threading.Event()
        self._has_connected = threading.Event()  # set at the first accepted CONNECT, never cleared
        # Held while a status is published and `_connected` read or set with it: a connect's birth
        # status and a health change in the same instant end with the status that says the newer.
        self._status_lock = threading.Lock()
        self._refused = threading.Event()  # the last CONNACK said no (credentials, ACL, ...)
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._acks: queue.SimpleQueue[tuple[int, str | None]] = queue.SimpleQueue()
        self._mids: dict[int, str] = {}  # owned by the mqtt-outbox thread
        self._last_failure: str | None = None
        self._degraded: str | None = None  # why the status says 'degraded' (the outbox's disk)
        self._next_disk_retry = 0.0  # monotonic time; owned by the mqtt-outbox thread
        self._next_status = 0.0  # monotonic time the retained online status is refreshed
        self._publisher = ServiceThread(
            "mqtt-outbox", self._run_publisher, stopping=self._stopping, wake=self._wake.set
        )

    def _make_client(self) -> paho.Client:
        client = configured_client(self.options, self.client_id)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    # -- public API -------------------------------------------------------------------------

    def start(self) -> None:
        """Register the will, start connecting (retried in the background) and the publisher."""
        will = self._status_as("offline")
        self._client.will_set(self.topics.status, will.to_json(), qos=1, retain=True)
        self._client.connect_async(self.options.host, self.options.port, self.options.keepalive)
        self._client.loop_start()
        self._publisher.start()
        log.info("MQTT link to %s started (client id %s)", self.options.address, self.client_id)

    def publish(self, topic_suffix: str, payload: Payload, *, retain: bool = False) -> str:
        """Queue `payload` durably for `<root>/<topic_suffix>` (QoS 1); returns its message id.

        The message id is the payload's own key (`event_id`, `window_id`) when it has one, so
        queueing the same event or window again before it is acknowledged adds nothing.
        """
        message_id = payload.message_id or new_event_id()
        self._outbox.put(
            self.topics.topic(topic_suffix), payload.to_json(), message_id=message_id, qos=1, retain=retain
        )
        self._wake.set()
        return message_id

    def subscribe(self, topic_suffix: str, handler: MessageHandler) -> None:
        """Call `handler(topic, payload)` for messages on `<root>/<topic_suffix>` (QoS 1).

        The subscription is renewed on every connect. The handler runs on paho's thread: it
        must hand the message over (e.g. to a queue) and return.
        """
        topic = self.topics.topic(topic_suffix)

        def on_message(client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
            try:
                handler(message.topic, bytes(message.payload))
            except Exception:
                log.exception("handler for %s failed; message dropped", message.topic)

        self._client.message_callback_add(topic, on_message)
        with self._lock:
            self._subscriptions.add(topic)
            connected = self._connected.is_set()
        if connected:
            self._client.subscribe(topic, qos=1)

    def announce(self, topic: str, payload: str) -> None:
        """Publish `payload` retained (QoS 1) on `topic`, outside the device's root if need be, now
        when connected and again at every connect, like the status: it describes the device (Home
        Assistant discovery), so it needs no outbox, only to be there after any reconnect."""
        with self._lock:
            self._announcements[topic] = payload
            connected = self._connected.is_set()
        # Room for these too beside the status and the outbox rows (see configured_client).
        self._client.max_inflight_messages_set(self.options.max_in_flight + 4 + len(self._announcements))
        if connected:
            self._client.publish(topic, payload, qos=1, retain=True)

    def update_status(self, *, versions: Versions | None = None, details: dict[str, Scalar] | None = None) -> None:
        """Change the retained status (a new gallery version, a health detail) and republish it.

        `details` are merged into the current ones (a value of None is kept as null). When not
        connected, the next connect publishes the updated status as its birth message.
        """
        update: dict[str, object] = {}
        if versions is not None:
            update["versions"] = versions
        if details is not None:
            update["details"] = {**self._status.details, **details}
        self._status = self._status.model_copy(update=update)
        self._publish_status()

    def _publish_status(self) -> None:
        with self._status_lock:
            if self._connected.is_set():
                self._publish_online(self._client)

    def _publish_online(self, client: paho.Client) -> None:
        """The retained online (or degraded) status, expiring unless refreshed (MQTT 5)."""
        self._next_status = time.monotonic() + self.options.status_expiry / 3
        properties = None
        if self.options.protocol == "5":
            properties = Properties(PacketTypes.PUBLISH)
            properties.MessageExpiryInterval = self.options.status_expiry
        status = self._status_as("online").to_json()
        client.publish(self.topics.status, status, qos=1, retain=True, properties=properties)

    def stop(self, timeout: float = 5.0) -> None:
        """Publish the retained `offline` status, disconnect, and stop both threads.

        Rows not acknowledged by then stay in the outbox and are sent by the next start.
        """
        self._publisher.stop(timeout)
        if self._connected.is_set():
            info = self._client.publish(self.topics.status, self._status_as("offline").to_json(), qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as e:
                log.warning("offline status may not have reached the broker: %s", e)
        close_quietly(self._client)
        self._settle_acks()
        self._outbox.release_in_flight()
        log.info(
            "MQTT link to %s stopped; %d message(s) left in the outbox",
            self.options.address,
            self._outbox.count_pending(),
        )

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """True once connected (birth status sent), False if `timeout` seconds pass first."""
        return self._connected.wait(timeout)

    def require_connected(self, timeout: float) -> None:
        """Return once the broker has accepted this link (it may have gone since: the outbox
        holds what waits); else raise `LinkError` saying where and why it failed.

        A broker that answers and refuses (bad credentials) fails at once; one that does not
        answer is retried until `timeout`.
        """
        deadline = time.monotonic() + timeout
        while not self._has_connected.wait(0.05):
            if self._refused.is_set() or time.monotonic() >= deadline:
                break
        if not self._has_connected.is_set():
            why = self._last_failure or "no answer to CONNECT (is it an MQTT broker? TLS?)"
            raise LinkError(f"cannot connect to MQTT broker {self.options.address} within {timeout:g} s: {why}")

    def flush(self, timeout: float) -> bool:
        """Wait until the outbox has nothing left to send; False if `timeout` passes first."""
        deadline = time.monotonic() + timeout
        while self._outbox.count_pending() > 0:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    # -- paho callbacks (network thread) ----------------------------------------------------

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: paho.ReasonCode,
        properties: paho.Properties | None,  # None with MQTT 3.1.1
    ) -> None:
        try:
            if reason_code.is_failure:
                self._last_failure = f"broker refused the connection: {reason_code}"
                self._refused.set()
                log.error("MQTT broker %s refused the connection: %s", self.options.address, reason_code)
                return
            self._last_failure = None
            self._refused.clear()
            with self._status_lock:
                self._publish_online(client)
                with self._lock:
                    topics = sorted(self._subscriptions)
                    announcements = dict(self._announcements)
                    self._connected.set()
                    self._has_connected.set()
            for topic, payload in announcements.items():
                client.publish(topic, payload, qos=1, retain=True)
            for topic in topics:
                client.subscribe(topic, qos=1)
            self._wake.set()
            log.info("connected to MQTT broker %s", self.options.address)
        except Exception:
            log.exception("on_connect failed")

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        try:
            # paho calls this inside its `except OSError:` without passing the error on.
            error = sys.exc_info()[1]
            self._last_failure = f"{type(error).__name__}: {error}" if error else "connect failed"
            log.warning("cannot connect to MQTT broker %s: %s (retrying)", self.options.address, self._last_failure)
        except Exception:
            log.exception("on_connect_fail failed")

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason_code: paho.ReasonCode,
        properties: paho.Properties | None,
    ) -> None:
        try:
            was_connected = self._connected.is_set()
            self._connected.clear()
            if was_connected and not self._stopping.is_set():
                self._last_failure = f"disconnected: {reason_code}"
                log.warning("disconnected from MQTT broker %s: %s (reconnecting)", self.options.address, reason_code)
        except Exception:
            log.exception("on_disconnect failed")

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason_code: paho.ReasonCode, properties: paho.Properties
    ) -> None:
        try:
            self._acks.put((mid, str(reason_code) if reason_code.is_failure else None))
            self._wake.set()
        except Exception:
            log.exception("on_publish failed")

    # -- mqtt-outbox thread -----------------------------------------------------------------

    def _run_publisher(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            try:
                self._settle_acks()
                self._check_disk()
                if self._connected.is_set() and time.monotonic() >= self._next_status:
                    self._publish_status()
                if self._connected.is_set():
                    self._hand_over()
            except Exception:
                log.exception("outbox publisher failed; retrying in 1 s")
                self._stopping.wait(1.0)
        self._settle_acks()

    def _check_disk(self) -> None:
        """While the outbox's disk refuses writes, retry it once a second; the status says
        'degraded' (with the reason) from the first refusal until a write succeeds again."""
        if self._outbox.disk_error is not None and time.monotonic() >= self._next_disk_retry:
            self._next_disk_retry = time.monotonic() + 1.0
            self._outbox.retry_disk()
        reason = self._outbox.disk_error
        if reason != self._degraded:
            self._degraded = reason
            if reason is None:
                log.info("status online again: the state disk takes writes")
            else:
                log.warning("status degraded: %s", reason)
            self._publish_status()

    def _settle_acks(self) -> None:
        """Delete acknowledged rows; mids not in the map are the status messages."""
        while True:
            try:
                mid, failure = self._acks.get_nowait()
            except queue.Empty:
                return
            message_id = self._mids.pop(mid, None)
            if message_id is None:
                continue
            if failure is None:
                self._outbox.mark_delivered(message_id)
            else:
                self._outbox.mark_failed(message_id, f"broker refused it: {failure}")

    def _hand_over(self) -> None:
        room = self.options.max_in_flight - len(self._mids)
        if room <= 0:
            return
        for row in self._outbox.pending(room):
            try:
                info = self._client.publish(row.topic, row.payload, qos=row.qos, retain=row.retain)
            except ValueError as e:  # bad topic or size: it will never go
                self._outbox.mark_failed(row.message_id, f"paho refused it: {e}")
                continue
            if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
                return  # paho still holds a message with this mid; retry on the next wake
            # MQTT_ERR_NO_CONN (connection lost just now) is fine: paho keeps QoS 1 messages
            # and sends them after reconnecting.
            self._mids[info.mid] = row.message_id
            self._outbox.mark_in_flight(row.message_id)

    def _status_as(self, state: Literal["online", "offline"]) -> StatusPayload:
        """The status to publish; 'online' is 'degraded', with its reason, while a fault lasts."""
        reason = self._degraded
        if state == "online" and reason is not None:
            return self._status.model_copy(update={"state": "degraded", "reason": reason[:200], "ts": utc_now()})
        return self._status.model_copy(update={"state": state, "reason": None, "ts": utc_now()})
