"""The collector end to end: a fleet's traffic through a real Mosquitto into the trial store.

The traffic is made with the real payload models (scripts/fleet_traffic.py): statuses, config
reports, every window's stats and its match events, with repeats, swapped neighbours and one
window never sent. The checks compare the store with what the devices themselves counted.
Every test runs on SQLite and on PostgreSQL (`db_url`, tests/support_postgres.py).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support_camera import MjpegCamera
from support_fleet import TlsClient, fleet_broker
from support_wait import wait_until
from test_device_e2e import gallery, settings_for, slideshow, slideshow_jpegs  # noqa: F401, F811 (fixtures)

from edge.central.fleet.bundle import issue_device
from edge.central.fleet.client import central_options
from edge.central.fleet.folder import FleetDir
from edge.central.trial.collector import Collector
from edge.central.trial.intake import DATABASE, MALFORMED, MISMATCH, SCHEMA, SUFFIXES, TOPIC, UNKNOWN_DEVICE
from edge.central.trial.store import TrialStore
from edge.cli import main
from edge.commands.collect import known_devices
from edge.device.app import run_device
from edge.link import MqttOptions, StatsPayload
from fleet_traffic import COUNTED, Publisher, Traffic, make_traffic
from local_broker import free_port
from postgres_server import PostgresServer

DEVICES, WINDOWS = 12, 20


@pytest.fixture(scope="module")
def traffic() -> Traffic:
    return make_traffic(DEVICES, WINDOWS, sites=3)


@pytest.fixture
def store(db_url: str) -> Iterator[TrialStore]:
    with TrialStore.open(db_url) as s:
        yield s


@pytest.fixture
def collector_factory(broker, store) -> Iterator[Callable[..., Collector]]:
    """`make(client_id, **options) -> Collector`, subscribed to `broker`, writing to `store`."""
    made: list[Collector] = []

    def make(client_id: str = "collector-1", **options) -> Collector:
        c = Collector(MqttOptions.from_url(broker.url), store.add_many, client_id=client_id, **options)
        made.append(c)
        c.start()
        c.wait_subscribed(10)
        return c

    yield make
    for c in made:
        c.stop()


def replay(port: int, messages: list[tuple[str, bytes]]) -> None:
    publisher = Publisher("127.0.0.1", port, client_id=f"replay-{os.getpid()}-{id(messages)}")
    try:
        publisher.replay(messages)
        assert publisher.wait_acked(len(messages), timeout=30)
    finally:
        publisher.stop()


def stored(store: TrialStore) -> int:
    return len(store.windows()) + len(store.events()) + len(store.statuses()) + len(store.configs())


def check_totals(store: TrialStore, traffic: Traffic) -> None:
    """Every window and event once; per device the stored windows plus the one missing window
    give exactly what the device counted; the missing window is reported, not zero."""
    site, device, window_id = traffic.gap
    totals: dict[str, Counter[str]] = {name: Counter() for name in traffic.expected}
    for w in store.windows():
        totals[f"{w['site']}/{w['device_id']}"].update({k: w[k] for k in COUNTED})
    totals[f"{site}/{device}"].update(traffic.gap_counts)
    assert totals == traffic.expected
    assert len(store.windows()) == traffic.windows - 1
    assert len(store.events()) == traffic.events
    assert len(store.statuses()) == len(store.configs()) == DEVICES
    missing = store.missing_windows()
    assert [(m.site, m.device_id, *m.window_ids()) for m in missing] == [(*traffic.gap, traffic.gap[2])]


def test_replayed_traffic_gives_the_devices_totals_and_reports_the_gap(broker, store, collector_factory, traffic):
    collector = collector_factory()
    replay(broker.port, traffic.messages)
    assert wait_until(lambda: collector.counts().received == len(traffic.messages), timeout=30)
    counts = collector.counts()
    assert (counts.stored, counts.duplicates, sum(counts.refused.values())) == (traffic.unique, traffic.duplicates, 0)
    check_totals(store, traffic)


def test_two_collectors_of_one_group_split_the_traffic_and_store_it_once(broker, store, collector_factory, traffic):
    first, second = collector_factory("collector-a"), collector_factory("collector-b")
    replay(broker.port, traffic.messages)
    both = lambda: first.counts().received + second.counts().received  # noqa: E731
    assert wait_until(lambda: both() == len(traffic.messages), timeout=30)
    a, b = first.counts(), second.counts()
    assert a.received > 0 and b.received > 0  # the broker split the traffic
    assert a.stored + b.stored == traffic.unique
    check_totals(store, traffic)


def test_refused_messages_are_counted_and_the_collector_goes_on(broker, store, collector_factory, traffic):
    devices = frozenset(traffic.expected)
    collector = collector_factory(devices=devices)
    topic, payload = next((t, p) for t, p in traffic.messages if t.endswith("/stats"))
    site, device = topic.split("/")[1:3]
    other = next(name for name in sorted(devices) if name != f"{site}/{device}")
    bad = [
        (topic, b"{not json"),  # malformed
        (topic, b"\xff\xfe"),  # not UTF-8
        (topic, b'{"window_id": "x"}'),  # schema: fields missing
        (topic.replace("/stats", "/match"), payload),  # schema: a stats payload on match
        (f"edge/{other}/stats", payload),  # mismatch: another device's topic
        (f"edge/{site}/stranger/stats", payload.replace(device.encode(), b"stranger")),  # unknown device
    ]
    replay(broker.port, [*bad, (topic, payload)])
    assert wait_until(lambda: collector.counts().received == len(bad) + 1)
    counts = collector.counts()
    assert dict(counts.refused) == {MALFORMED: 2, SCHEMA: 2, MISMATCH: 1, UNKNOWN_DEVICE: 1}
    assert counts.stored == 1
    assert [w["window_id"] for w in store.windows()] == [payload.decode().split('"')[3]]
    assert TOPIC not in counts.refused


def start_collect(broker_url: str, db_url: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    """`edge collect` in its own process, as an operator runs it."""
    command = [sys.executable, "-m", "edge.cli", "collect", "--broker", broker_url, "--db", db_url]
    command += ["--client-id", "collector-kill", "--log-every", "1", *extra]
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)


def test_a_killed_collector_and_a_restarted_broker_lose_and_double_nothing(
    broker_factory, store, db_url, traffic, tmp_path
):
    """SIGKILL mid-replay: what it had received and not yet committed is not acknowledged, so the
    broker sends it again; what arrives while it is down waits in its session, across a broker
    restart. (Mosquitto 2.0 does not restore a shared subscription from its persistence file, so
    traffic resumes once the collector has subscribed again: see docs/pages/trials.md, "Run a field trial".)"""
    broker = broker_factory(persistence=True)
    log = tmp_path / "collect.log"
    subscribed = lambda n: lambda: log.read_text().count("subscribed to") >= n  # noqa: E731
    thirds = [traffic.messages[i::3] for i in range(3)]
    collector = start_collect(broker.url, db_url, log)
    try:
        assert wait_until(subscribed(1), timeout=30), log.read_text()
        replay(broker.port, thirds[0] + thirds[1])
        assert wait_until(lambda: stored(store) > 0, timeout=30), log.read_text()
        collector.send_signal(signal.SIGKILL)  # mid-replay: some received, some not yet acknowledged
        collector.wait()
        assert stored(store) < traffic.unique
        replay(broker.port, thirds[2][: len(thirds[2]) // 2])  # kept by the broker for the session
        broker.stop()  # a clean restart: Mosquitto saves its sessions and their queues
        broker.start()
        collector = start_collect(broker.url, db_url, log)
        assert wait_until(subscribed(2), timeout=30), log.read_text()
        replay(broker.port, thirds[2][len(thirds[2]) // 2 :])
        assert wait_until(lambda: stored(store) == traffic.unique, timeout=60), log.read_text()
    finally:
        collector.send_signal(signal.SIGTERM)
        assert collector.wait(30) == 0, log.read_text()
    check_totals(store, traffic)


def test_a_lone_collector_without_a_share_group_loses_nothing_published_while_the_broker_restarted(
    broker_factory, store, db_url, traffic, tmp_path
):
    """`--no-share`: plain subscriptions, which Mosquitto restores with the session after its
    restart, so traffic sent before the collector is back waits for it (shared ones would not)."""
    broker = broker_factory(persistence=True)
    log = tmp_path / "collect.log"
    halves = traffic.messages[::2], traffic.messages[1::2]
    collector = start_collect(broker.url, db_url, log, "--no-share")
    try:
        assert wait_until(lambda: "subscribed to" in log.read_text(), timeout=30), log.read_text()
        replay(broker.port, halves[0])
        assert wait_until(lambda: stored(store) > 0, timeout=30), log.read_text()
        collector.send_signal(signal.SIGTERM)
        assert collector.wait(30) == 0, log.read_text()
        broker.stop()
        broker.start()
        replay(broker.port, halves[1])  # nobody subscribed since the restart but the restored session
        collector = start_collect(broker.url, db_url, log, "--no-share")
        assert wait_until(lambda: stored(store) == traffic.unique, timeout=60), log.read_text()
    finally:
        collector.send_signal(signal.SIGTERM)
        assert collector.wait(30) == 0, log.read_text()
    check_totals(store, traffic)


def test_a_fleet_collector_connects_with_the_central_certificate(broker_factory, store, traffic, tmp_path):
    """Through the TLS listener and ACL `edge fleet broker-config` writes: the central
    certificate may subscribe to the shared topics, and a provisioned device's stats is stored."""
    assert main(["fleet", "init", str(tmp_path / "fleet")]) == 0
    fleet = FleetDir(tmp_path / "fleet")
    topic, payload = next((t, p) for t, p in traffic.messages if t.endswith("/stats"))
    site, device = topic.split("/")[1:3]
    issue_device(fleet, site, device, tmp_path / "device")
    port = free_port()
    fleet_broker(broker_factory, fleet.root, tmp_path / "broker", port)
    assert known_devices(fleet) == {f"{site}/{device}"}
    collector = Collector(
        central_options(fleet, f"mqtts://localhost:{port}"), store.add_many, client_id="c", devices=known_devices(fleet)
    )
    collector.start()
    certs = tmp_path / "device"
    board = TlsClient(port, certs / "ca.crt", certs / "device.crt", certs / "device.key")
    try:
        collector.wait_subscribed(10)
        assert board.publish(topic, payload.decode()) == "Success"
        assert wait_until(lambda: collector.counts().stored == 1)
    finally:
        board.stop()
        collector.stop()
    assert len(store.windows()) == 1


def test_a_real_device_run_replayed_with_faults_gives_the_device_counters(
    broker,
    subscriber_factory,
    store,
    collector_factory,
    slideshow_jpegs,  # noqa: F811 (the fixture imported above)
    gallery,  # noqa: F811
    tmp_path,
    request,
):
    """`edge run`'s own traffic on the slideshow (1 s windows), recorded, then replayed with every
    other message sent twice, neighbours swapped and one window held back: the store's totals
    plus that window are the device's persisted counters, and that window is reported missing.
    The slideshow comes from a 25 fps camera, so 100 frames take 4 s (four windows) however fast
    this machine reads a file."""
    camera = MjpegCamera(lambda n: slideshow_jpegs[n % len(slideshow_jpegs)], fps=25).start()
    request.addfinalizer(camera.stop)
    recorder = subscriber_factory(broker.port, ["edge/#"])
    settings = settings_for(broker, gallery, camera.url, tmp_path / "state", stats={"window_s": 1})
    summary = run_device(settings, threading.Event(), max_frames=100)
    assert recorder.wait_for(lambda ms: any(m.topic.endswith("/status") and b"offline" in m.payload for m in ms))
    recorded = [(m.topic, m.payload) for m in recorder.messages() if m.topic.split("/", 3)[3] in SUFFIXES]
    stats = [(t, p) for t, p in recorded if t.endswith("/stats")]
    assert len(stats) >= 3, "too few windows to hold one back between two others"
    held_topic, held = stats[len(stats) // 2]
    faulty = [m for m in recorded for _ in range(2 if recorded.index(m) % 2 else 1) if m[1] != held]
    for i in range(0, len(faulty) - 1, 5):
        faulty[i], faulty[i + 1] = faulty[i + 1], faulty[i]
    collector = collector_factory()
    replay(broker.port, faulty)
    # >=: Mosquitto 2.0 also sends a shared subscription the retained status and config/reported
    assert wait_until(lambda: collector.counts().received >= len(faulty), timeout=30), collector.counts().line()
    held_window = StatsPayload.from_json(held)
    totals = Counter({k: held_window.model_dump()[k] for k in COUNTED})
    for w in store.windows():
        totals.update({k: w[k] for k in COUNTED})
    assert dict(totals) == {k: summary.totals[k] for k in COUNTED}
    assert len(store.events()) == totals["matches"] > 0
    assert all(e["score"] <= e["template_threshold"] for e in store.events()), "the template threshold is kept"
    missing = store.missing_windows()
    assert [m.window_ids() for m in missing] == [(held_window.window_id, held_window.window_id)]
    assert collector.counts().duplicates > 0 and not collector.counts().refused


POISONS = {  # what stopped the collector before payloads were bounded (issue 18)
    "frames 2**63": ("stats", {"frames": 2**63}),
    "frames 10**30": ("stats", {"frames": 10**30}),
    "fps Infinity": ("stats", {"fps": float("inf")}),
    "a window from year 1 to 9999": (
        "stats",
        {"window_start": "0001-01-01T00:00:00Z", "window_end": "9999-12-31T00:00:00Z"},
    ),
    "NUL in window_id": ("stats", {"window_id": "boot\x00-000001"}),
    "track_id 2**63": ("match", {"track_id": 2**63}),
    "NUL in identity_id": ("match", {"identity_id": "person\x00"}),
    "NUL in reason": ("status", {"state": "degraded", "reason": "disk\x00full"}),
    "config version 10**20": ("config/reported", {"version": 10**20}),
}


def _poisoned(traffic: Traffic, suffix: str, change: dict) -> tuple[str, bytes]:
    topic, payload = next((t, p) for t, p in traffic.messages if t.endswith("/" + suffix))
    data = {**json.loads(payload), **change}
    return topic, json.dumps(data, allow_nan=True).encode()


def test_poison_payloads_are_set_aside_and_the_next_message_is_stored(broker, store, collector_factory, traffic):
    """Each message that once blocked a collector for good (on SQLite or PostgreSQL) is refused
    where it is parsed, kept in `dead_letters` with why, acknowledged; the next one is stored."""
    collector = collector_factory()
    poisons = [_poisoned(traffic, suffix, change) for suffix, change in POISONS.values()]
    good = next((t, p) for t, p in traffic.messages if t.endswith("/stats"))
    raw_nul = (good[0], b'{"window_id": "\x00"}')  # not even JSON: a raw control character
    replay(broker.port, [*poisons, *poisons, raw_nul, good])  # each poison twice: a redelivery is one letter
    assert wait_until(lambda: collector.counts().received == 2 * len(poisons) + 2, timeout=60), (
        collector.counts().line()
    )
    counts = collector.counts()
    assert dict(counts.refused) == {SCHEMA: 2 * len(POISONS), MALFORMED: 1} and counts.stored == 1
    assert [w["window_id"] for w in store.windows()] == [json.loads(good[1])["window_id"]]
    letters = store.dead_letters()
    assert sorted(letter["reason"] for letter in letters) == [MALFORMED] + [SCHEMA] * len(POISONS)
    assert all("\x00" not in letter["excerpt"] + letter["detail"] for letter in letters)
    (raw,) = [letter for letter in letters if letter["reason"] == MALFORMED]
    assert raw["excerpt"] == '{"window_id": "\\x00"}', "a raw NUL is kept visibly, escaped"


def _refuse_identity(store: TrialStore, identity: str) -> None:
    """Make the database itself refuse one identity id, as a column that cannot hold a value would."""
    with store.engine.begin() as connection:
        if store.engine.dialect.name == "sqlite":
            connection.exec_driver_sql(
                f"CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.identity_id = '{identity}' "
                "BEGIN SELECT RAISE(ABORT, 'identity refused'); END"
            )
        else:
            connection.exec_driver_sql(f"ALTER TABLE events ADD CONSTRAINT refuse CHECK (identity_id <> '{identity}')")


def test_a_value_the_database_refuses_is_set_aside_and_the_rest_of_its_batch_stored(
    broker, store, collector_factory, traffic
):
    events = [(t, p) for t, p in traffic.messages if t.endswith("/match")][:4]
    refused = json.loads(events[1][1])["identity_id"]
    assert all(json.loads(p)["identity_id"] != refused for _, p in events[2:])
    _refuse_identity(store, refused)
    collector = collector_factory()
    replay(broker.port, events)
    assert wait_until(lambda: collector.counts().received == len(events), timeout=60), collector.counts().line()
    assert collector.counts().refused == Counter({DATABASE: 1})
    assert sorted(e["event_id"] for e in store.events()) == sorted(
        json.loads(p)["event_id"] for i, (_, p) in enumerate(events) if i != 1
    )
    (letter,) = store.dead_letters()
    assert (letter["reason"], letter["topic"]) == (DATABASE, events[1][0])
    assert "refused" in letter["detail"]


def test_a_database_outage_holds_the_batch_unacknowledged_and_warns_once(broker, traffic, caplog):
    """PostgreSQL stops under a running collector: the batch waits, unacknowledged, retried with
    a growing pause and one WARNING (not one per try, no parameter list); when the server is back
    everything is stored."""
    try:
        server = PostgresServer(fsync=False)
        url = server.start()
    except RuntimeError as e:
        pytest.skip(str(e))
    tries = Counter[str]()
    try:
        with TrialStore.open(url) as store:

            def sink(payloads, aside):
                tries["store"] += 1
                return store.add_many(payloads, aside)

            collector = Collector(MqttOptions.from_url(broker.url), sink, client_id="outage")
            collector.start()
            try:
                collector.wait_subscribed(10)
                server.halt()
                messages = [(t, p) for t, p in traffic.messages if t.endswith(("/stats", "/match"))][:50]
                replay(broker.port, messages)
                assert wait_until(lambda: tries["store"] >= 4, timeout=60), "the collector retries"
                assert collector.counts().received == 0, "nothing is counted (or acknowledged) while it is down"
                server.resume()
                unique = len({p for _, p in messages})
                assert wait_until(lambda: len(store.windows()) + len(store.events()) == unique, timeout=60)
            finally:
                counts = collector.stop()
    finally:
        server.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([w for w in warnings if "trial database unavailable" in w]) == 1, warnings
    assert len([w for w in warnings if "available again" in w]) == 1, warnings
    assert all(len(w) < 600 and "parameters" not in w for w in warnings), warnings
    assert counts.store_outages == 1 and counts.received == len(messages)
