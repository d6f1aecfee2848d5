"""`edge fleet status` against a real Mosquitto holding what real devices' links retained.

Four devices: one online (a live MqttLink), one that stopped (offline, a refused config change
reported), one whose retained online status is two hours old (what a broker keeps of a dead
device under MQTT 3.1.1), and one whose status is not valid JSON at all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import edge
from edge.cli import main
from edge.link import ConfigReported, MqttLink, MqttOptions, Outbox, StatusPayload, Topics, Versions, utc_now

pytest_plugins = ["support_broker"]

NOW = utc_now()


def status_for(topics: Topics, gallery: str, threshold: float, fmr: float | None, **details) -> StatusPayload:
    return StatusPayload(
        state="online",
        device_id=topics.device_id,
        site=topics.site,
        ts=NOW,
        started_at=NOW,
        versions=Versions(
            software=edge.__version__,
            detector_model_id="blazeface_full_range",
            embedder_model_id="dlib_resnet_v1_int8",
            embedder_sha256="0123abcd",
            gallery_version=gallery,
        ),
        details={
            "threshold": threshold,
            "fmr": fmr,
            "false_alerts_per_1000_mixed": None if fmr is None else 1000 * fmr * 5,
            "false_alerts_per_1000_bound": None if fmr is None else 1000 * fmr * 50,
            **details,
        },
    )


def reported(topics: Topics, version: int, answered: int, last_error: str | None = None) -> ConfigReported:
    return ConfigReported(
        version=version,
        ts=NOW,
        device_id=topics.device_id,
        site=topics.site,
        config={"match": {"threshold": None}},
        last_error=last_error,
        status="applied" if last_error is None else "rejected",
        answered_version=answered,
    )


def publish_raw(port: int, topic: str, payload: bytes) -> None:
    """One retained message the way a foreign or broken client would send it (MQTT 3.1.1)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def fleet(broker, tmp_path) -> Iterator[str]:
    """The four devices' retained messages on `broker`; yields the broker URL."""
    links = []

    def link(site: str, device: str, status: StatusPayload, report: ConfigReported) -> MqttLink:
        topics = Topics(site, device)
        outbox = Outbox(tmp_path / f"{site}-{device}.sqlite")
        made = MqttLink(MqttOptions.from_url(broker.url), topics, outbox, status)
        made.publish("config/reported", report, retain=True)
        made.start()
        assert made.wait_connected(10) and made.flush(10)
        links.append((made, outbox))
        return made

    online = Topics("north", "pi-01")
    link("north", "pi-01", status_for(online, "g-7", 0.4125, 0.00012), reported(online, 3, 3))
    stopped = Topics("north", "pi-02")
    refusal = "config/set version 4: match.threshold: Input should be less than or equal to 2 (got 7)"
    gone = link(
        "north",
        "pi-02",
        status_for(stopped, "g-2", 0.5, None, gallery_push_error="gallery/set version 1 is not newer than 2"),
        reported(stopped, 3, 4, refusal),
    )
    gone.stop()
    old = status_for(
        Topics("south", "jet-1"), "g-1", 0.4125, 0.00012, gallery_error="gallery.sqlite: not a gallery"
    ).model_copy(update={"ts": NOW - timedelta(hours=2)})
    publish_raw(broker.port, "edge/south/jet-1/status", old.to_json().encode())
    publish_raw(broker.port, "edge/south/usb-9/status", b'{"state": "online", "site": ')
    publish_raw(broker.port, "edge/south/usb-9/config/reported", b"\xff\xfe not json")
    yield broker.url
    for made, outbox in links:
        made.stop()
        outbox.close()


def status_cli(capsys, tmp_path: Path, broker_url: str, *extra: str) -> str:
    assert main(["fleet", "status", "--fleet", str(tmp_path / "fleet"), "--broker", broker_url, *extra]) == 0
    return capsys.readouterr().out


def test_json_has_every_device_with_its_versions_and_operating_point(fleet, tmp_path, capsys):
    rows = {r["device"]: r for r in json.loads(status_cli(capsys, tmp_path, fleet, "--json"))}
    assert sorted(rows) == ["north/pi-01", "north/pi-02", "south/jet-1", "south/usb-9"]
    live = rows["north/pi-01"]
    assert live["state"] == "online" and not live["stale"] and live["problems"] == []
    assert live["software"] == edge.__version__ and live["embedder"] == "dlib_resnet_v1_int8"
    assert live["config_version"] == 3 and live["config_outcome"] == "applied" and live["gallery_version"] == "g-7"
    assert live["threshold"] == 0.4125 and live["fmr"] == 0.00012
    assert live["false_alerts_per_1000_mixed"]["per_1000"] == pytest.approx(0.6)
    assert live["false_alerts_per_1000_bound"]["per_1000"] == pytest.approx(6.0)
    assert live["last_refused"] is None
    stopped = rows["north/pi-02"]
    assert stopped["state"] == "offline" and not stopped["stale"]
    assert (stopped["config_version"], stopped["config_answered"], stopped["config_outcome"]) == (3, 4, "rejected")
    assert stopped["last_refused"].startswith("config: config/set version 4: match.threshold")
    assert stopped["fmr"] is None and stopped["false_alerts_per_1000_mixed"]["per_1000"] is None
    old = rows["south/jet-1"]
    assert old["state"] == "online" and old["stale"], "a two-hour-old online status is not marked stale"
    assert old["config_version"] is None, "no config/reported was retained for it"
    assert old["last_refused"] == "gallery: gallery.sqlite: not a gallery"
    broken = rows["south/usb-9"]
    assert broken["state"] == "malformed" and broken["software"] is None
    assert [p.split(":")[0] for p in broken["problems"]] == ["status is malformed", "config/reported is malformed"]


def test_table_is_aligned_and_says_what_each_device_is_doing(fleet, tmp_path, capsys):
    lines = status_cli(capsys, tmp_path, fleet).splitlines()
    header, rows, notes = lines[0], lines[1:5], lines[5:]
    columns = ["DEVICE", "STATE", "LAST SEEN", "SOFTWARE", "MODELS", "CONFIG", "GALLERY", "THRESHOLD", "FMR"]
    starts = [header.index(c) for c in columns]
    assert starts == sorted(starts)
    by_device = {row.split()[0]: row for row in rows}
    assert sorted(by_device) == ["north/pi-01", "north/pi-02", "south/jet-1", "south/usb-9"]
    for row in rows:  # every row's cells start under their header
        assert row[starts[1] - 2 : starts[1]] == "  " and row[starts[1]] != " "
    live = by_device["north/pi-01"]
    assert live[starts[1] :].startswith("online ") and re.search(
        r" \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ \(\d+[smhd] ago\)", live
    )
    assert "blazeface_full_range + dlib_resnet_v1_int8" in live and "0.4125" in live and "0.00012" in live
    assert live[starts[5] :].startswith("3 applied ") and live[starts[6] :].startswith("g-7 ")
    assert by_device["north/pi-02"][starts[1] :].startswith("offline ")
    assert by_device["north/pi-02"][starts[5] :].startswith("3 (v4 rejected) ")
    assert "config: config/set version 4: match.threshold" in by_device["north/pi-02"]
    assert by_device["south/jet-1"][starts[1] :].startswith("online, stale ") and "(2h ago)" in by_device["south/jet-1"]
    assert by_device["south/usb-9"][starts[1] :].startswith("malformed ")
    assert len(notes) == 2 and notes[0].startswith("south/usb-9: status is malformed: (root): Invalid JSON")
    assert notes[1].startswith("south/usb-9: config/reported is malformed: (root): Invalid JSON")


def test_site_filter_and_an_empty_broker(fleet, broker_factory, tmp_path, capsys):
    rows = json.loads(status_cli(capsys, tmp_path, fleet, "--site", "north", "--json"))
    assert [r["device"] for r in rows] == ["north/pi-01", "north/pi-02"]
    empty = broker_factory()
    assert "no device has a retained status" in status_cli(capsys, tmp_path, empty.url)


def test_a_site_that_is_a_wildcard_is_refused(broker, tmp_path, capsys):
    assert main(["fleet", "status", "--fleet", str(tmp_path), "--broker", broker.url, "--site", "#"]) == 1
    assert "--site" in capsys.readouterr().err
