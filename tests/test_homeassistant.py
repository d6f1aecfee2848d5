"""Home Assistant MQTT discovery from a real device run against a real Mosquitto.

Home Assistant itself does not run here, so its side is checked as far as it can be: every
config is retained on the documented topic, carries the keys Home Assistant requires, and
its templates, evaluated on the real `stats`, `match` and `status` payloads of the same run,
give the values Home Assistant would show. The templates use only the part of Jinja that is
also Python (attribute access, a conditional, a dict literal, `| tojson`), which `render`
evaluates.
"""

from __future__ import annotations

import csv
import json
import re
import threading
from pathlib import Path

import pytest
from test_mqtt_link import status_for

import edge
from edge.central.fleet.client import retained
from edge.cli import main
from edge.config import ConfigError, load_settings
from edge.device.app import run_device
from edge.device.parts import home_assistant_discovery
from edge.link import MqttLink, MqttOptions, Outbox, Topics
from edge.link.homeassistant import discovery_configs, node_id

pytest_plugins = ["support_broker"]

PERSON = "marco_antonio_barrera"  # shown in the slideshow's first two seconds
TOPICS = Topics("test", "cam-1")


class _Json(dict):
    """`value_json` as Home Assistant's Jinja sees it: fields by attribute; a missing one fails here."""

    def __getattr__(self, name: str):
        return self[name]


def render(template: str, payload: bytes) -> object:
    """Evaluate a `{{ ... }}` template on a payload, the Jinja subset that is also Python."""
    expression = re.fullmatch(r"\{\{(.*)\}\}", template.strip(), re.S).group(1).strip()
    as_json = expression.endswith("| tojson")
    value = eval(expression.removesuffix("| tojson"), {"__builtins__": {}}, {"value_json": _Json(json.loads(payload))})
    return json.dumps(value) if as_json else value


@pytest.fixture(scope="module")
def gallery(data_dir, tmp_path_factory) -> Path:
    """The slideshow's first person, enrolled from photos of them that the video does not show."""
    shown = {r["source_path"] for r in csv.DictReader(open(data_dir / "videos" / "lfw_slideshow.csv"))}
    rows = csv.DictReader(open(data_dir / "identities.csv"))
    photos = [str(data_dir / r["path"]) for r in rows if r["identity"] == PERSON and r["path"] not in shown]
    path = tmp_path_factory.mktemp("gallery") / "gallery.sqlite"
    assert main(["enroll", "--gallery", str(path), "--name", PERSON, "--id", PERSON, *photos]) == 0
    return path


def run_short(broker, gallery: Path, data_dir: Path, state: Path, max_frames: int, **extra) -> None:
    settings = load_settings(
        device={"device_id": TOPICS.device_id, "site": TOPICS.site, "state_dir": state},
        camera={"source": f"file:{data_dir / 'videos' / 'lfw_slideshow.mp4'}"},
        models={"detector": "blazeface_short_range"},
        match={"gallery": gallery},
        mqtt={"url": broker.url, "connect_timeout_s": 15},
        **extra,
    )
    run_device(settings, threading.Event(), max_frames)


def test_enabled_device_announces_entities_whose_templates_read_its_real_payloads(
    broker, subscriber_factory, gallery, data_dir, tmp_path
):
    live = subscriber_factory(broker.port, ["edge/#"])
    run_short(broker, gallery, data_dir, tmp_path / "state", 50, homeassistant={"enabled": True})
    assert live.wait_for(
        lambda ms: any(m.topic == TOPICS.stats for m in ms) and any(m.topic == TOPICS.match for m in ms)
    )
    payloads = {m.topic: m.payload for m in live.messages()}  # the last of each topic
    online = next(m.payload for m in live.messages(TOPICS.status) if b'"online"' in m.payload)

    later = subscriber_factory(broker.port, ["homeassistant/#"])  # after the run: only what is retained
    node = "edge-test-cam-1"
    want = {f"homeassistant/sensor/{node}/{o}/config" for o in ("scans", "matches", "fps", "status")}
    want.add(f"homeassistant/event/{node}/match/config")
    assert later.wait_for(lambda ms: {m.topic for m in ms} >= want)
    configs = {m.topic: json.loads(m.payload) for m in later.messages()}
    assert set(configs) == want and all(m.retain for m in later.messages())

    for topic, config in configs.items():
        object_id = topic.split("/")[3]
        assert config["unique_id"] == f"{node}_{object_id}"
        assert config["device"]["identifiers"] == [node] and config["device"]["model"] == "edge"
        assert config["device"]["sw_version"] == edge.__version__ and config["device"]["name"]
        assert config["origin"]["name"] == "edge" and config["name"]
        assert config["state_topic"] in (TOPICS.stats, TOPICS.match, TOPICS.status)
        for availability in config.get("availability", []):  # a degraded device still reports
            assert availability["topic"] == TOPICS.status
            assert render(availability["value_template"], online) == "online"
            offline = payloads[TOPICS.status]
            assert b'"offline"' in offline and render(availability["value_template"], offline) == "offline"

    stats = json.loads(payloads[TOPICS.stats])
    sensor = {topic.split("/")[3]: c for topic, c in configs.items() if "/sensor/" in topic}
    for field in ("scans", "matches", "fps"):
        assert sensor[field]["state_topic"] == TOPICS.stats
        assert render(sensor[field]["value_template"], payloads[TOPICS.stats]) == stats[field]
    assert sensor["fps"]["unit_of_measurement"] == "fps"
    assert render(sensor["status"]["value_template"], online) == "online"
    assert render(sensor["status"]["value_template"], payloads[TOPICS.status]) in sensor["status"]["options"]

    event = configs[f"homeassistant/event/{node}/match/config"]
    match = json.loads(payloads[TOPICS.match])
    fired = json.loads(render(event["value_template"], payloads[TOPICS.match]))
    assert fired["event_type"] in event["event_types"]
    assert (fired["identity_id"], fired["score"]) == (PERSON, match["score"])


def test_disabled_by_default_publishes_nothing_under_the_prefix(
    broker, subscriber_factory, gallery, data_dir, tmp_path
):
    watch = subscriber_factory(broker.port, ["homeassistant/#", "edge/#"])
    run_short(broker, gallery, data_dir, tmp_path / "state", 1)
    assert watch.wait_for(lambda ms: any(b'"offline"' in m.payload for m in ms))
    assert [m.topic for m in watch.messages() if m.topic.startswith("homeassistant/")] == []


def test_an_id_home_assistant_cannot_take_stops_the_start(tmp_path):
    settings = load_settings(device={"site": "lab.2", "state_dir": tmp_path / "state"}, homeassistant={"enabled": True})
    with pytest.raises(ConfigError, match="homeassistant.enabled: .*lab.2/dev-0"):
        home_assistant_discovery(settings, Topics(settings.device.site, settings.device.device_id))


def test_the_acl_pattern_lets_a_device_write_only_its_own_discovery_topics(broker_factory, tmp_path):
    """With the README's ACL line, a device announces itself and cannot overwrite another's configs."""
    acl = "user watcher\ntopic read #\npattern readwrite edge/%u/#\npattern write homeassistant/+/%c/+/config\n"
    broker = broker_factory(users={"test/cam-1": "pw1", "watcher": "pw2"}, acl=acl)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    link = MqttLink(
        MqttOptions.from_url(broker.url, username="test/cam-1", password="pw1"), TOPICS, outbox, status_for(TOPICS)
    )
    assert node_id(TOPICS) == link.client_id
    own = discovery_configs("homeassistant", TOPICS, edge.__version__)
    other = discovery_configs("homeassistant", Topics("test", "cam-2"), edge.__version__)
    for topic, config in {**own, **other}.items():
        link.announce(topic, config)
    link.start()
    try:
        assert link.wait_connected(10)
    finally:
        link.stop()  # waits for the offline status, which the broker handles after the announcements
        outbox.close()
    found = retained(MqttOptions.from_url(broker.url, username="watcher", password="pw2"), "homeassistant/#")
    assert found == {topic: config.encode() for topic, config in own.items()}
