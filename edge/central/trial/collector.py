"""The collector: a fleet's MQTT traffic into the trial database, each message once, none lost.

Delivery: devices send at least once, so the store is idempotent (event id and window id are
unique keys) and the collector acknowledges late. It subscribes with QoS 1 under a persistent
MQTT 5 session (a stable client id, clean_start=False and a Session Expiry Interval), so the
broker keeps what arrives while the collector is down, and it acknowledges each message
(manual PUBACK) only after the transaction that stored it has committed: a collector killed
before the commit gets the message again, never loses it.

Scale: the subscriptions are shared (`$share/<group>/edge/+/+/<suffix>`), so the broker splits
one fleet's traffic between every collector of the group. Mosquitto 2.0 keeps a session's queued
messages across its own restart but not its shared subscriptions, so until the collectors have
subscribed again, new messages reach none of them; a single collector can subscribe plainly
(`group=None`), which Mosquitto restores with the session, and then a broker restart loses nothing.

Threads:
- paho's network thread runs the callbacks, which only hand messages to a bounded queue. The
  queue never blocks that thread: its size is twice the Receive Maximum the collector asks the
  broker for, the most unacknowledged messages the broker may send it.
- `collector-writer` takes batches from the queue, validates them (edge/central/trial/intake.py),
  writes the good ones in one transaction, and then acknowledges the whole batch.

Two kinds of failure, told apart:
- A message it can never store (intake refused it, or the database refused one of its values)
  is set aside in the `dead_letters` table, in the same transaction as the rest of its batch,
  counted by reason and acknowledged: one bad message never holds up the others.
- A database it cannot reach (down, disk full, locked) keeps the batch unacknowledged and
  retries it with a growing pause (up to `MAX_RETRY_S`); one WARNING when the store goes away
  and one when it comes back, not one per try. The broker holds what arrives meanwhile.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge.central.trial.intake import DATABASE, SUFFIXES, DeadLetter, IntakeCounts, Refused, decode
from edge.central.trial.terms import StoreRefused
from edge.link import LinkError, MqttOptions
from edge.link.mqtt import close_quietly, configured_client
from edge.link.payloads import TOPIC_PREFIX, Payload
from edge.service import ServiceThread

log = logging.getLogger(__name__)

Sink = Callable[[Sequence[Payload], Sequence[DeadLetter]], list[bool]]
"""Stores payloads and the messages set aside in one transaction, committed before it returns;
True for each payload that was new. Raises `StoreRefused` when the database refuses a value, any
other exception when it cannot be reached."""

DEFAULT_GROUP = "collectors"
SESSION_EXPIRY_S = 7 * 24 * 3600  # how long the broker keeps a stopped collector's messages
RECEIVE_MAXIMUM = 1000  # unacknowledged messages the broker may send one collector at a time
BATCH = 500  # messages per transaction at most
REFUSALS_LOGGED = 10  # per reason, then one line per 1,000
FIRST_RETRY_S = 0.5  # pause before the first retry of a batch the store could not take
MAX_RETRY_S = 30.0  # the pause doubles up to this


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    mid: int
    qos: int


def subscriptions(group: str | None) -> list[str]:
    """The subscriptions, one per message kind, shared by every collector of `group`; with no
    group, plain ones (a single collector), which Mosquitto 2.0 restores after its own restart."""
    if group is None:
        return [f"{TOPIC_PREFIX}/+/+/{suffix}" for suffix in SUFFIXES]
    if not group or any(c in group for c in "/+#"):
        raise LinkError(f"share group {group!r} must be one topic level (no '/', '+', '#')")
    return [f"$share/{group}/{TOPIC_PREFIX}/+/+/{suffix}" for suffix in SUFFIXES]


class Collector:
    """Subscribe, validate, store, acknowledge. `start()`, then `stop()` (SIGINT/SIGTERM)."""

    def __init__(
        self,
        options: MqttOptions,
        sink: Sink,
        *,
        client_id: str,
        group: str | None = DEFAULT_GROUP,
        devices: frozenset[str] | None = None,
        log_every_s: float = 60.0,
        batch: int = BATCH,
    ) -> None:
        if options.protocol != "5":
            raise LinkError("the collector needs MQTT 5 (shared subscriptions, session expiry)")
        self.options = options
        self.client_id = client_id
        self.topics = subscriptions(group)
        self._sink = sink
        self._devices = devices
        self._log_every_s = log_every_s
        self._batch = batch
        self._queue: queue.Queue[Received] = queue.Queue(maxsize=2 * RECEIVE_MAXIMUM)
        self._counts = IntakeCounts()
        self._counts_lock = threading.Lock()
        self._stopping = threading.Event()
        self._subscribed = threading.Event()
        self._refused_at_connect: str | None = None
        self._store_down_since: float | None = None  # monotonic time the store went away; None: it is up
        self._writer = ServiceThread("collector-writer", self._run_writer, stopping=self._stopping)
        self._client = configured_client(options, client_id)
        self._client.manual_ack_set(True)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    def start(self) -> None:
        """Connect in the background (a broker that is down is retried) and start writing."""
        connect = Properties(PacketTypes.CONNECT)
        connect.SessionExpiryInterval = SESSION_EXPIRY_S
        connect.ReceiveMaximum = RECEIVE_MAXIMUM
        o = self.options
        # clean_start=False on every connect, the first included: a restarted collector
        # resumes its session and gets what the broker kept for it.
        self._client.connect_async(o.host, o.port, o.keepalive, clean_start=False, properties=connect)
        self._client.loop_start()
        self._writer.start()

    def wait_subscribed(self, timeout: float) -> None:
        """Return once the broker granted the subscriptions; `LinkError` if not within `timeout`."""
        deadline = time.monotonic() + timeout
        while not self._subscribed.wait(0.05):
            if self._refused_at_connect is not None or time.monotonic() >= deadline:
                why = self._refused_at_connect or f"no subscription within {timeout:g} s"
                raise LinkError(f"collector cannot subscribe at MQTT broker {self.options.address}: {why}")

    def stop(self, timeout: float = 10.0) -> IntakeCounts:
        """Finish the batch in hand, then disconnect. What was received and not yet stored is
        not acknowledged: the broker sends it again after the next start."""
        try:
            self._writer.stop(timeout)
        finally:
            close_quietly(self._client)
        with self._counts_lock:
            self._counts.unacknowledged += self._queue.qsize()
            log.info("collector %s stopped: %s", self.client_id, self._counts.line())
        return self.counts()

    def counts(self) -> IntakeCounts:
        """A copy of the running totals."""
        with self._counts_lock:
            c = self._counts
            return replace(c, refused=c.refused.copy())

    # -- paho callbacks (network thread) ----------------------------------------------------

    def _on_connect(self, client: paho.Client, userdata: Any, flags, reason_code, properties) -> None:
        try:
            if reason_code.is_failure:
                self._refused_at_connect = f"broker refused the connection: {reason_code}"
                log.error("MQTT broker %s refused the collector: %s", self.options.address, reason_code)
                return
            client.subscribe([(t, SubscribeOptions(qos=1)) for t in self.topics])
            log.info(
                "collector %s connected to %s (session %s)",
                self.client_id,
                self.options.address,
                "resumed" if flags.session_present else "new",
            )
        except Exception:
            log.exception("on_connect failed")

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid, reason_codes, properties) -> None:
        try:
            failed = [str(rc) for rc in reason_codes if rc.is_failure]
            if failed:
                self._refused_at_connect = f"subscription refused: {', '.join(failed)}"
                log.error("MQTT broker %s refused the subscriptions: %s", self.options.address, failed)
                return
            self._subscribed.set()
            log.info("collector %s subscribed to %s", self.client_id, ", ".join(self.topics))
        except Exception:
            log.exception("on_subscribe failed")

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags, reason_code, properties) -> None:
        try:
            self._subscribed.clear()
            if not self._stopping.is_set():
                log.warning("collector disconnected from %s: %s (reconnecting)", self.options.address, reason_code)
        except Exception:
            log.exception("on_disconnect failed")

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            self._queue.put(Received(message.topic, bytes(message.payload), message.mid, message.qos))
        except Exception:
            log.exception("on_message failed")

    # -- collector-writer thread ------------------------------------------------------------

    def _run_writer(self) -> None:
        next_log = time.monotonic() + self._log_every_s
        while not self._stopping.is_set():
            batch = self._take()
            if batch:
                self._write(batch)
            if time.monotonic() >= next_log:
                next_log = time.monotonic() + self._log_every_s
                with self._counts_lock:
                    log.info("collector %s: %s", self.client_id, self._counts.line())

    def _take(self) -> list[Received]:
        """Up to `batch` messages: waits a little for the first, takes the rest that are there."""
        try:
            batch = [self._queue.get(timeout=0.2)]
        except queue.Empty:
            return []
        while len(batch) < self._batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write(self, batch: list[Received]) -> None:
        """Validate, store in one transaction, then acknowledge; retry while the store is away."""
        started = time.perf_counter()
        good: list[tuple[Received, Payload]] = []
        aside: list[DeadLetter] = []
        for m in batch:
            try:
                good.append((m, decode(m.topic, m.payload, self._devices)))
            except Refused as r:
                aside.append(DeadLetter(m.topic, m.payload, r.reason, r.detail))
        decoded = time.perf_counter()
        pause = FIRST_RETRY_S
        while True:
            try:
                new = self._store(good, aside)
                break
            except Exception as e:  # the database is unreachable: keep the batch, unacknowledged
                self._store_away(e, len(batch), pause)
                if self._stopping.wait(pause):
                    with self._counts_lock:
                        self._counts.unacknowledged += len(batch)
                    return
                pause = min(2 * pause, MAX_RETRY_S)
        self._store_back()
        written = time.perf_counter()
        for m in batch:
            self._client.ack(m.mid, m.qos)
        with self._counts_lock:
            c = self._counts
            c.received += len(batch)
            c.stored += sum(new)
            c.duplicates += len(new) - sum(new)
            c.decode_s += decoded - started
            c.write_s += written - decoded
            c.batches += 1
            for letter in aside:
                c.refused[letter.reason] += 1
                n = c.refused[letter.reason]
                if n <= REFUSALS_LOGGED or n % 1000 == 0:
                    log.warning("set aside (%d %s so far): %s", n, letter.reason, letter.detail)

    def _store(self, good: list[tuple[Received, Payload]], aside: list[DeadLetter]) -> list[bool]:
        """Store the batch; when the database refuses a value, store its messages one at a time
        and set aside each one it refuses (appended to `aside`), so the others are kept."""
        try:
            return self._sink([p for _, p in good], aside)
        except StoreRefused:
            if not good:
                raise
        new: list[bool] = []
        for m, payload in good:
            try:
                new += self._sink([payload], [])
            except StoreRefused as e:
                aside.append(DeadLetter(m.topic, m.payload, DATABASE, f"{m.topic}: {e}"))
        self._sink([], aside)
        return new

    def _store_away(self, error: Exception, held: int, pause: float) -> None:
        """Say once that the store went away (the next retries say nothing)."""
        if self._store_down_since is None:
            self._store_down_since = time.monotonic()
            with self._counts_lock:
                self._counts.store_outages += 1
            log.warning(
                "trial database unavailable, holding %d message(s) unacknowledged and retrying (pause up to %g s): %s",
                held,
                MAX_RETRY_S,
                error_line(error),
            )

    def _store_back(self) -> None:
        if self._store_down_since is not None:
            log.warning("trial database available again after %.0f s", time.monotonic() - self._store_down_since)
            self._store_down_since = None


def error_line(e: BaseException) -> str:
    """An error on one line, at most 300 characters: a database error's text can span lines."""
    return " ".join(f"{type(e).__name__}: {e}".split())[:300]
