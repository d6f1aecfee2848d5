"""MqttLink against a real Mosquitto: status, will, delivery through outages and restarts."""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support_wait import wait_until
from test_outbox import fill, small_disk  # noqa: F401 F811 (small_disk: a fixture)

import edge
from edge.link import (
    BrokerUrlError,
    LinkError,
    MatchEvent,
    MqttLink,
    MqttOptions,
    Outbox,
    StatusPayload,
    Topics,
    Versions,
    parse_broker_url,
    probe_broker,
    utc_now,
)

if TYPE_CHECKING:
    from support_broker import Broker, Subscriber

pytest_plugins = ["support_broker"]

SITE, DEVICE = "lab", "pi-01"
TOPICS = Topics(site=SITE, device_id=DEVICE)
STARTED = utc_now()

LinkFactory = Callable[..., MqttLink]


def status_for(topics: Topics) -> StatusPayload:
    return StatusPayload(
        state="online",
        device_id=topics.device_id,
        site=topics.site,
        ts=STARTED,
        started_at=STARTED,
        details={"threshold": 0.42},
        versions=Versions(
            software=edge.__version__,
            detector_model_id="blazeface",
            embedder_model_id="mobilefacenet",
            embedder_sha256="0123abcd",
            gallery_version="g-1",
        ),
    )


def event(track_id: int) -> MatchEvent:
    return MatchEvent(
        ts=STARTED + timedelta(milliseconds=track_id),
        device_id=DEVICE,
        site=SITE,
        track_id=track_id,
        identity_id=f"person-{track_id % 7}",
        score=0.3,
        threshold=0.42,
        metric="cosine",
        model_id="mobilefacenet",
        gallery_version="g-1",
        window_id=f"{DEVICE}:boot:0",
    )


def event_ids(sub: Subscriber) -> Counter[str]:
    return Counter(MatchEvent.from_json(m.payload).event_id for m in sub.messages(TOPICS.match))


def has_all(expected: set[str]) -> Callable[[list], bool]:
    return lambda msgs: expected <= {MatchEvent.from_json(m.payload).event_id for m in msgs if m.topic == TOPICS.match}


def states(sub: Subscriber, topic: str = TOPICS.status) -> list[tuple[str, bool]]:
    return [(StatusPayload.from_json(m.payload).state, m.retain) for m in sub.messages(topic)]


@pytest.fixture
def make_link(tmp_path: Path) -> Iterator[LinkFactory]:
    """`make(port, outbox_path=None, topics=TOPICS, **options) -> MqttLink` (not started)."""
    links: list[MqttLink] = []
    outboxes: list[Outbox] = []

    def make(port: int, outbox_path: Path | None = None, topics: Topics = TOPICS, **options: object) -> MqttLink:
        outbox = Outbox(outbox_path or tmp_path / f"outbox-{len(outboxes)}.db")
        outboxes.append(outbox)
        opts = {"reconnect_max_delay": 1, **options}
        link = MqttLink(MqttOptions(host="127.0.0.1", port=port, **opts), topics, outbox, status_for(topics))
        links.append(link)
        return link

    yield make
    for link in links:
        link.stop(timeout=2)
    for outbox in outboxes:
        outbox.close()


def test_birth_is_retained_online_and_clean_stop_leaves_offline(
    broker: Broker, make_link: LinkFactory, subscriber_factory
) -> None:
    link = make_link(broker.port)
    link.start()
    link.require_connected(10)
    live = subscriber_factory(broker.port, [TOPICS.status])
    assert live.wait_for(lambda ms: len(ms) >= 1)
    assert states(live)[0][0] == "online"
    birth = StatusPayload.from_json(live.messages()[0].payload)
    assert birth.versions == status_for(TOPICS).versions
    assert birth.details == {"threshold": 0.42}

    late = subscriber_factory(broker.port, [TOPICS.status])
    assert late.wait_for(lambda ms: len(ms) >= 1)
    assert states(late) == [("online", True)]

    link.stop()
    assert live.wait_for(lambda ms: len(ms) >= 2)
    assert states(live)[1][0] == "offline"
    after = subscriber_factory(broker.port, [TOPICS.status])
    assert after.wait_for(lambda ms: len(ms) >= 1)
    assert states(after) == [("offline", True)]


CHILD = """
import sys, time
from test_mqtt_link import TOPICS, status_for
from edge.link import MqttLink, MqttOptions, Outbox
link = MqttLink(MqttOptions(host="127.0.0.1", port=int(sys.argv[1])), TOPICS,
                Outbox(sys.argv[2]), status_for(TOPICS))
link.start()
print("connected" if link.wait_connected(10) else "not connected", flush=True)
time.sleep(60)
"""


def test_will_publishes_offline_when_the_process_dies(broker: Broker, subscriber_factory, tmp_path: Path) -> None:
    sub = subscriber_factory(broker.port, [TOPICS.status])
    repo = Path(edge.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), str(Path(__file__).parent)])}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(broker.port), str(tmp_path / "child.db")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "connected"
        assert sub.wait_for(lambda ms: len(ms) >= 1)
        assert states(sub)[0][0] == "online"
        child.send_signal(signal.SIGKILL)  # no DISCONNECT, no offline of its own
    finally:
        child.kill()
        child.wait()
    assert sub.wait_for(lambda ms: len(ms) >= 2)
    assert states(sub)[1][0] == "offline"
    after = subscriber_factory(broker.port, [TOPICS.status])
    assert after.wait_for(lambda ms: len(ms) >= 1)
    assert states(after) == [("offline", True)]


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_events_arrive_exactly_once(broker: Broker, make_link: LinkFactory, subscriber_factory, protocol: str) -> None:
    sub = subscriber_factory(broker.port, [TOPICS.match])
    link = make_link(broker.port, max_in_flight=4, protocol=protocol)
    events = [event(i) for i in range(60)]
    for e in events[:20]:  # queued before the link starts, one of them twice
        assert link.publish("match", e) == e.event_id
    link.publish("match", events[0])
    link.start()
    link.require_connected(10)
    for e in events[20:]:
        link.publish("match", e)
    assert link.flush(20)
    expected = {e.event_id for e in events}
    assert sub.wait_for(has_all(expected))
    assert event_ids(sub) == Counter(expected)
    received = {MatchEvent.from_json(m.payload) for m in sub.messages(TOPICS.match)}
    assert received == set(events)


def test_broker_restart_mid_stream_loses_nothing(
    broker_factory, make_link: LinkFactory, subscriber_factory, record_property
) -> None:
    """Duplicates are allowed (QoS 1), losses are not; the count of duplicates is recorded."""
    broker = broker_factory(persistence=True)
    sub = subscriber_factory(broker.port, [TOPICS.match], client_id="central", persistent=True)
    link = make_link(broker.port, max_in_flight=5)
    link.start()
    link.require_connected(10)
    events = [event(i) for i in range(400)]
    half_way = threading.Event()

    def produce() -> None:
        for i, e in enumerate(events):
            link.publish("match", e)
            if i == len(events) // 2:
                half_way.wait(20)
            time.sleep(0.002)

    producer = threading.Thread(target=produce, name="test-producer")
    producer.start()
    assert sub.wait_for(lambda ms: len(ms) >= 50, timeout=20)
    broker.stop()  # with rows in flight and rows still being written
    half_way.set()
    broker.start()
    producer.join()
    assert link.flush(30)
    expected = {e.event_id for e in events}
    assert sub.wait_for(has_all(expected), timeout=30)
    counts = event_ids(sub)
    duplicates = sum(counts.values()) - len(counts)
    record_property("duplicates", duplicates)
    print(f"broker restart: {len(counts)} events, {duplicates} duplicate deliveries")
    assert set(counts) == expected


def test_events_written_while_the_broker_is_down_arrive_after_it_returns(
    broker_factory, make_link: LinkFactory, subscriber_factory
) -> None:
    broker = broker_factory(persistence=True)
    sub = subscriber_factory(broker.port, [TOPICS.match], client_id="central", persistent=True)
    link = make_link(broker.port)
    link.start()
    link.require_connected(10)
    broker.stop()
    assert wait_until(lambda: not link.connected)
    events = [event(i) for i in range(25)]
    for e in events:
        link.publish("match", e)
    assert not link.flush(0.5)
    broker.start()
    assert link.wait_connected(15)
    assert link.flush(15)
    assert sub.wait_for(has_all({e.event_id for e in events}), timeout=15)


def test_rows_left_by_a_previous_process_are_sent(
    broker: Broker, make_link: LinkFactory, subscriber_factory, tmp_path: Path
) -> None:
    path = tmp_path / "device-outbox.db"
    events = [event(i) for i in range(12)]
    with Outbox(path) as previous:
        for e in events:
            previous.put(TOPICS.match, e.to_json(), message_id=e.event_id)
        for row in previous.pending(5):
            previous.mark_in_flight(row.message_id)  # handed to paho, then the power went
    sub = subscriber_factory(broker.port, [TOPICS.match])
    link = make_link(broker.port, outbox_path=path)
    link.start()
    assert link.flush(15)
    assert sub.wait_for(has_all({e.event_id for e in events}))


def test_rows_unacknowledged_at_stop_are_sent_by_the_next_link(
    broker: Broker, subscriber_factory, tmp_path: Path
) -> None:
    """A new link over the same Outbox object (e.g. after a broker change) resends them."""
    sub = subscriber_factory(broker.port, [TOPICS.match])
    options = MqttOptions(host="127.0.0.1", port=broker.port, reconnect_max_delay=1)
    events = [event(i) for i in range(5)]
    with Outbox(tmp_path / "shared.db") as outbox:
        first = MqttLink(options, TOPICS, outbox, status_for(TOPICS))
        first.start()
        try:
            first.require_connected(10)
            broker.pause()  # PUBLISH goes out, PUBACK never comes back
            for e in events:
                first.publish("match", e)
            assert wait_until(lambda: outbox.pending(10) == [])  # all in flight
        finally:
            first.stop(timeout=0.5)
        assert outbox.count_pending() == 5
        broker.resume()
        second = MqttLink(options, TOPICS, outbox, status_for(TOPICS))
        second.start()
        try:
            assert second.flush(15)
        finally:
            second.stop()
    assert sub.wait_for(has_all({e.event_id for e in events}))


def test_unreachable_broker_gives_a_clear_error(make_link: LinkFactory) -> None:
    from support_broker import free_port

    port = free_port()
    link = make_link(port)
    link.start()
    assert not link.wait_connected(0.2)
    with pytest.raises(LinkError, match=rf"127\.0\.0\.1:{port} within 1\.5 s: .*refused"):
        link.require_connected(1.5)


def test_a_broker_that_went_away_after_accepting_the_link_does_not_fail_the_start(
    broker: Broker, make_link: LinkFactory
) -> None:
    """`edge run` checks the broker once at start; a broker that accepted the link and was gone a
    moment later made that check fail ("cannot connect", exit 1): the outbox holds what waits."""
    link = make_link(broker.port)
    link.start()
    assert link.wait_connected(30)
    broker.stop()
    assert wait_until(lambda: not link.connected, timeout=30)
    link.require_connected(0.1)


def test_probe_and_stop_log_no_paho_error(broker: Broker, make_link: LinkFactory, caplog) -> None:
    """Leaving must not race paho's network thread into "Client is not connected" at ERROR
    (it did about once in twenty probes); the probe also refuses a wrong password."""
    options = MqttOptions(host="127.0.0.1", port=broker.port)
    with caplog.at_level("DEBUG", logger="edge.link.mqtt.paho"):
        for _ in range(60):
            probe_broker(options, "probe-test", 5)
        for _ in range(3):
            link = make_link(broker.port)
            link.start()
            link.require_connected(10)
            link.stop()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_full_state_disk_degrades_the_status_and_loses_nothing(
    broker: Broker,
    subscriber_factory,
    small_disk: Path,  # noqa: F811
) -> None:
    """Events the disk refused are sent from memory; the status says degraded, with the reason,
    also after a reconnect, and online again once the disk takes writes."""
    sub = subscriber_factory(broker.port, [TOPICS.match, TOPICS.status])
    options = MqttOptions(host="127.0.0.1", port=broker.port, reconnect_max_delay=1)
    with Outbox(small_disk / "outbox.db") as outbox:
        link = MqttLink(options, TOPICS, outbox, status_for(TOPICS))
        ballast = fill(small_disk)
        ids = []
        while outbox.disk_error is None or len(ids) < 300:  # grows the file until the disk refuses
            assert len(ids) < 5000, "the disk never refused a write"
            ids.append(link.publish("match", event(len(ids))))
        link.start()
        try:
            assert sub.wait_for(has_all(set(ids)), timeout=30)
            assert link.flush(10)
            last = lambda: StatusPayload.from_json(sub.messages(TOPICS.status)[-1].payload)  # noqa: E731
            assert wait_until(lambda: sub.messages(TOPICS.status) and last().state == "degraded")
            assert "full" in (last().reason or "")
            seen = len(sub.messages(TOPICS.status))
            broker.stop()
            broker.start()
            after = lambda: [StatusPayload.from_json(m.payload).state for m in sub.messages(TOPICS.status)[seen:]]  # noqa: E731
            assert wait_until(lambda: "degraded" in after(), timeout=15)
            assert "online" not in after(), "a reconnect forgot the fault"
            ballast.unlink()
            assert wait_until(lambda: last().state == "online" and last().reason is None)
            assert outbox.dropped == 0 and sum(event_ids(sub).values()) >= len(ids)
        finally:
            link.stop()


def test_a_device_that_dies_while_the_broker_is_down_does_not_stay_online(
    broker_factory, make_link: LinkFactory, subscriber_factory
) -> None:
    """The broker crashes (its persistence holds the retained online), the device dies before it
    can reconnect, the broker restarts: no will is left to say offline, so the online status must
    expire instead of claiming a dead device is online for ever."""
    broker = broker_factory(persistence=True)
    broker.stop()
    with broker.conf_path.open("a") as conf:
        conf.write("autosave_interval 1\n")  # saves the retained status before the crash
    broker.start()
    link = make_link(broker.port, status_expiry_s=6)
    link.start()
    link.require_connected(10)
    time.sleep(2.5)  # an autosave happens
    os.kill(broker._proc.pid, signal.SIGKILL)
    link.stop(timeout=0.5)  # gone without a word, as a dead device
    broker.start()

    def retained() -> list[tuple[str, bool]]:
        sub = subscriber_factory(broker.port, [TOPICS.status])
        sub.wait_for(bool, timeout=0.5)
        return states(sub)

    assert retained() == [("online", True)], "the crash did not leave the stale status this test is about"
    assert wait_until(lambda: retained() == [], timeout=15)


def test_username_and_password_reach_the_broker(broker_factory, make_link: LinkFactory) -> None:
    broker = broker_factory(users={"pi-01": "s3cret"})
    good = make_link(broker.port, username="pi-01", password="s3cret")
    good.start()
    good.require_connected(10)
    bad = make_link(broker.port, topics=Topics(site=SITE, device_id="pi-02"), username="pi-02", password="wrong")
    bad.start()
    with pytest.raises(LinkError, match="refused the connection"):
        bad.require_connected(10)
    assert "s3cret" not in repr(good.options)


def test_a_message_the_broker_refuses_is_kept_and_not_resent(
    broker_factory, make_link: LinkFactory, tmp_path: Path
) -> None:
    """MQTT 5 PUBACK with a failure code (here an ACL denial): kept on disk, marked failed."""
    broker = broker_factory(acl=f"topic readwrite {TOPICS.status}\n")
    path = tmp_path / "refused.db"
    link = make_link(broker.port, outbox_path=path)
    link.start()
    link.require_connected(10)
    link.publish("match", event(1))
    assert link.flush(10)
    link.stop()
    with Outbox(path) as box:
        assert (box.count_pending(), box.count_failed()) == (0, 1)


def test_subscriptions_survive_a_broker_restart_and_a_failing_handler(
    broker: Broker, make_link: LinkFactory, subscriber_factory
) -> None:
    got: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()

    def handler(topic: str, payload: bytes) -> None:
        if payload == b"boom":
            raise RuntimeError("handler bug")
        got.put((topic, payload))

    link = make_link(broker.port)
    link.subscribe("config/set", handler)
    link.start()
    link.require_connected(10)
    central = subscriber_factory(broker.port, ["unused/topic"])

    def deliver(payload: bytes) -> bytes:
        """Publish until the handler hears it (the subscription may still be on its way)."""
        for _ in range(50):
            central.publish(TOPICS.config_set, b"boom")
            central.publish(TOPICS.config_set, payload)
            try:
                topic, heard = got.get(timeout=0.3)
            except queue.Empty:
                continue
            assert topic == TOPICS.config_set
            return heard
        raise AssertionError(f"{payload!r} never reached the handler")

    assert deliver(b'{"version": 1}') == b'{"version": 1}'
    broker.stop()
    assert wait_until(lambda: not link.connected)
    broker.start()
    assert link.wait_connected(15)
    while not got.empty():
        got.get()
    assert deliver(b'{"version": 2}') == b'{"version": 2}'


# -- options and URLs (no broker) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host", "port", "tls"),
    [
        ("mqtt://broker.local", "broker.local", 1883, False),
        ("mqtt://10.0.0.5:1884", "10.0.0.5", 1884, False),
        ("mqtts://broker.example.org", "broker.example.org", 8883, True),
        ("mqtts://broker.example.org:9883/", "broker.example.org", 9883, True),
        ("mqtt://[::1]:1883", "::1", 1883, False),
    ],
)
def test_broker_urls(url: str, host: str, port: int, tls: bool) -> None:
    address = parse_broker_url(url)
    assert (address.host, address.port, address.tls) == (host, port, tls)
    options = MqttOptions.from_url(url, username="u")
    assert (options.host, options.port, options.tls, options.username) == (host, port, tls, "u")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://broker:1883", "scheme must be mqtt://"),
        ("broker:1883", "scheme must be mqtt://"),
        ("tcp://broker", "scheme must be mqtt://"),
        ("mqtt://", "no host"),
        ("mqtt://broker:notaport", "(?i)port"),
        ("mqtt://broker:70000", "(?i)port"),
        ("mqtt://user:pw@broker", "not in the URL"),
        ("mqtt://broker/edge", "only scheme://host"),
    ],
)
def test_bad_broker_urls_say_why(url: str, why: str) -> None:
    with pytest.raises(BrokerUrlError, match=why) as info:
        parse_broker_url(url)
    assert "pw" not in str(info.value)


def test_unreadable_tls_files_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing-ca.pem"
    options = MqttOptions.from_url("mqtts://127.0.0.1", ca_certs=str(missing))
    with (
        pytest.raises(LinkError, match=f"127.0.0.1:8883 \\(ca_certs={missing}\\)"),
        Outbox(tmp_path / "o.db") as outbox,
    ):
        MqttLink(options, TOPICS, outbox, status_for(TOPICS))


def test_inconsistent_options_are_refused() -> None:
    with pytest.raises(LinkError, match="mqtts://"):
        MqttOptions(host="b", ca_certs="/etc/ca.pem")
    with pytest.raises(LinkError, match="needs a username"):
        MqttOptions(host="b", password="x")
    with pytest.raises(LinkError, match="max_in_flight"):
        MqttOptions(host="b", max_in_flight=0)
