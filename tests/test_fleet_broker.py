"""The broker `edge fleet broker-config` writes, run by a real Mosquitto with the fleet's certificates:
client ids bound to devices' certificates, the central tools' own listener, and a queue sized for
a collector outage."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from support_fleet import TlsClient, fleet_broker
from support_wait import wait_until
from test_mqtt_link import status_for

from edge.central.fleet.broker import MAX_INFLIGHT
from edge.central.fleet.bundle import issue_device
from edge.central.fleet.client import central_options
from edge.central.fleet.folder import FleetDir
from edge.central.trial.collector import Collector
from edge.central.trial.store import TrialStore
from edge.cli import main
from edge.link import MqttLink, MqttOptions, Outbox, StatsPayload, Topics
from edge.link.mqtt import configured_client
from local_broker import Broker, free_port
from postgres_server import PostgresServer

pytestmark = pytest.mark.broker  # the fleet's generated broker config, run by a real Mosquitto

PI_01, PI_02 = Topics("north", "pi-01"), Topics("north", "pi-02")


@dataclass
class Fleet:
    dir: FleetDir
    certs: Path  # certs/<device_id>/ holds each device's ca.crt, device.crt, device.key
    broker: Broker
    central_port: int

    @property
    def central_url(self) -> str:
        return f"mqtts://127.0.0.1:{self.central_port}"

    def device(self, topics: Topics, client_id: str = "") -> TlsClient:
        """A client with the device's certificate on the devices' listener."""
        certs = self.certs / topics.device_id
        return TlsClient(
            self.broker.port, certs / "ca.crt", certs / "device.crt", certs / "device.key", client_id=client_id
        )

    def central(self, client_id: str) -> TlsClient:
        """A client with the central certificate on the central tools' listener."""
        return TlsClient(
            self.central_port, self.dir.ca_cert, self.dir.central_cert, self.dir.central_key, client_id, "127.0.0.1"
        )

    def link(self, topics: Topics, outbox: Outbox) -> MqttLink:
        """The device's own MQTT link (birth status, `offline` will), not started."""
        certs = self.certs / topics.device_id
        files = {"ca_certs": certs / "ca.crt", "certfile": certs / "device.crt", "keyfile": certs / "device.key"}
        url = f"mqtts://localhost:{self.broker.port}"
        options = MqttOptions.from_url(url, **{k: str(v) for k, v in files.items()})
        return MqttLink(options, topics, outbox, status_for(topics))


@pytest.fixture
def fleet(tmp_path, broker_factory) -> Fleet:
    """A fleet with north/pi-01 and north/pi-02, and its broker as `broker-config` writes it."""
    assert main(["fleet", "init", str(tmp_path / "fleet")]) == 0
    fleet = FleetDir(tmp_path / "fleet")
    for topics in (PI_01, PI_02):
        issue_device(fleet, topics.site, topics.device_id, tmp_path / "certs" / topics.device_id)
    port, central_port = free_port(), free_port()
    broker = fleet_broker(broker_factory, fleet.root, tmp_path / "broker", port, central_port=central_port)
    return Fleet(fleet, tmp_path / "certs", broker, central_port)


@pytest.fixture
def pi_02(fleet, tmp_path) -> Iterator[MqttLink]:
    """pi-02's link, connected."""
    outbox = Outbox(tmp_path / "pi-02.sqlite")
    link = fleet.link(PI_02, outbox)
    link.start()
    assert link.wait_connected(10)
    yield link
    link.stop()
    outbox.close()


def states(client: TlsClient, topics: Topics) -> list[str]:
    return [json.loads(m.payload)["state"] for m in client.messages if m.topic == topics.status]


def test_a_device_cannot_take_over_another_device_session(fleet, pi_02):
    watcher = fleet.central("watcher")
    try:
        assert watcher.subscribe("edge/#") == "Granted QoS 1"
        assert watcher.wait_for(lambda t: PI_02.status in t)
        for attempt in range(3):
            # pi-01's certificate with pi-02's client id: before, the broker closed pi-02's connection
            # and published its `offline` will.
            intruder = fleet.device(PI_01, client_id="edge-north-pi-02")
            try:
                assert intruder.publish(PI_01.stats, f"marker {attempt}") == "Success"
            finally:
                intruder.stop()
            # The broker sent a will before the intruder's CONNACK, so it is before the marker.
            assert watcher.wait_for(lambda t, n=attempt + 1: t.count(PI_01.stats) == n)
        assert states(watcher, PI_02) == ["online"]
        assert pi_02.connected
        assert "already connected" not in fleet.broker.log()
    finally:
        watcher.stop()


def test_discovery_configs_are_fenced_to_each_provisioned_device(fleet, tmp_path):
    issue_device(fleet.dir, "north", "pi-03", tmp_path / "certs" / "pi-03")  # after the ACL was written
    pi_01, pi_03 = fleet.device(PI_01, client_id="edge-north-pi-02"), fleet.device(Topics("north", "pi-03"))
    try:
        assert pi_01.publish("homeassistant/sensor/edge-north-pi-01/scans/config") == "No matching subscribers"
        assert pi_01.publish("homeassistant/sensor/edge-north-pi-02/scans/config") == "Not authorized"
        assert pi_03.publish("homeassistant/sensor/edge-north-pi-03/scans/config") == "Not authorized"
        assert pi_03.publish("edge/north/pi-03/stats") == "No matching subscribers"  # its own root: the patterns
    finally:
        pi_01.stop()
        pi_03.stop()


def test_the_collector_and_a_status_query_share_the_central_listener(fleet, pi_02, tmp_path, capsys):
    with TrialStore.open(f"sqlite:///{tmp_path / 'trial.db'}") as store:
        options = central_options(fleet.dir, fleet.central_url)
        collector = Collector(options, store.add_many, client_id="edge-collector-test")
        collector.start()
        try:
            collector.wait_subscribed(10)
            assert wait_until(lambda: collector.counts().received >= 1)  # pi-02's online status
            capsys.readouterr()
            status = ["fleet", "status", "--fleet", str(fleet.dir.root), "--broker", fleet.central_url, "--json"]
            assert main(status) == 0
            rows = {r["device"]: r for r in json.loads(capsys.readouterr().out)}
            assert rows["north/pi-02"]["state"] == "online"
            received = collector.counts().received
            pi_02.update_status(details={"threshold": 0.5})  # a new online status
            assert wait_until(lambda: collector.counts().received > received)
        finally:
            collector.stop()
    log = fleet.broker.log()
    assert log.count("as edge-collector-test") == 1 and "already connected" not in log


def test_an_away_collector_session_gets_every_message_queued_meanwhile(fleet, subscriber_factory):
    """3,000 messages from one device while the collector's session is away: with Mosquitto's
    default queue (1,000 per client) it got the first 1,000 only."""
    tls = (str(fleet.dir.ca_cert), str(fleet.dir.central_cert), str(fleet.dir.central_key))
    session = {"client_id": "edge-collector-test", "persistent": True, "tls": tls}
    subscriber_factory(fleet.central_port, [PI_01.stats], **session).stop()
    board = fleet.device(PI_01)
    try:
        sent = [f'{{"n": {n}}}'.encode() for n in range(3000)]
        assert all(board.publish(PI_01.stats, m.decode()) == "Success" for m in sent)
    finally:
        board.stop()
    back = subscriber_factory(fleet.central_port, [PI_01.stats], **session)
    assert back.wait_for(lambda ms: len(ms) >= len(sent), timeout=60), len(back.messages())
    assert sorted(m.payload for m in back.messages()) == sorted(sent)
    assert "dropped" not in fleet.broker.log()


def test_queue_follows_fleet_size_and_outage_and_binds_where_told(tmp_path):
    assert main(["fleet", "init", str(tmp_path / "fleet")]) == 0
    args = ["fleet", "broker-config", "--fleet", str(tmp_path / "fleet"), "--host", "mqtt.example.org"]
    assert main([*args, "--devices", "10", "--outage-hours", "2", "--bind", "192.0.2.10", "--out", str(tmp_path)]) == 0
    conf = (tmp_path / "edge.conf").read_text().splitlines()
    # per device and hour: 60 windows of 60 s, 120 online statuses (one per 30 s keepalive), 60 alerts
    assert "max_queued_messages 4800" in conf and "#   240 x 10 devices x 2 h = 4,800 messages" in conf
    assert "listener 8883 192.0.2.10" in conf and "listener 8884 127.0.0.1" in conf
    # The broker's Receive Maximum must let a device keep its whole window in flight.
    assert configured_client(MqttOptions(host="broker"), "d").max_inflight_messages <= MAX_INFLIGHT


@pytest.mark.parametrize(
    "options, why",
    [
        (["--bind", "0.0.0.0\nallow_anonymous true"], "--bind '0.0.0.0\\nallow_anonymous true' is not an IP address"),
        (["--central-bind", "0.0.0.0"], "devices must not reach it"),
        (["--central-port", "8883"], "two ports"),
        (["--devices", "0"], "at least 1 device"),
        (["--outage-hours", "0"], "an outage over 0 h"),
    ],
)
def test_broker_config_refuses_a_bad_listener_or_queue(tmp_path, capsys, options, why):
    assert main(["fleet", "init", str(tmp_path / "fleet")]) == 0
    args = ["fleet", "broker-config", "--fleet", str(tmp_path / "fleet"), "--host", "h", "--out", str(tmp_path / "b")]
    assert main([*args, *options]) == 1
    assert why in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def _window(seq: int) -> str:
    start = datetime(2026, 6, 1, tzinfo=timezone.utc) + timedelta(minutes=seq)
    return StatsPayload(
        window_id=f"boot-a-{seq:06d}",
        device_id=PI_01.device_id,
        site=PI_01.site,
        window_start=start,
        window_end=start + timedelta(minutes=1),
        **dict.fromkeys(("frames", "frames_dropped", "detections", "scans", "quality_rejected", "matches"), 1),
        fps=1 / 60,
        latency_ms_p50=1.0,
        latency_ms_p95=2.0,
    ).to_json()


@pytest.mark.postgres
def test_a_database_outage_behind_the_generated_broker_config_loses_nothing(fleet):
    """The collector's database stops; 3,000 windows arrive meanwhile: the collector holds up to
    its Receive Maximum (1,000) unacknowledged, the broker queues the rest. With Mosquitto's default
    queue (1,000) 131 windows and 5 events of a 60 s PostgreSQL outage were dropped; with the queue
    `broker-config` sizes, every window is stored once the database is back."""
    try:
        server = PostgresServer(fsync=False)
        url = server.start()
    except RuntimeError as e:
        pytest.skip(str(e))
    tries = [0]
    try:
        with TrialStore.open(url) as store:

            def sink(payloads, aside):
                tries[0] += 1
                return store.add_many(payloads, aside)

            collector = Collector(central_options(fleet.dir, fleet.central_url), sink, client_id="edge-collector-test")
            collector.start()
            try:
                collector.wait_subscribed(10)
                server.halt()
                board = fleet.device(PI_01)
                try:
                    sent = [_window(seq) for seq in range(1, 3001)]
                    assert all(board.publish(PI_01.stats, m) == "Success" for m in sent)
                finally:
                    board.stop()
                assert wait_until(lambda: tries[0] >= 3, timeout=60) and collector.counts().received == 0
                server.resume()
                assert wait_until(lambda: len(store.windows()) == len(sent), timeout=120), len(store.windows())
                assert store.missing_windows() == []
            finally:
                collector.stop()
    finally:
        server.stop()
    assert "dropped" not in fleet.broker.log()
