"""What goes onto a board: the config template loads, and the broker ACL fences each device."""

from __future__ import annotations

import threading
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import load_settings

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware-config"


BOARD_SOURCES = {"pi": "picam:0", "jetson": "gst:nvarguscamerasrc ", "usb": "v4l2:/dev/video0"}


def render(board: str, site: str, device_id: str, broker: str) -> str:
    """A board's template with its placeholders replaced, as `edge fleet provision` does: plain text."""
    text = (FIRMWARE / "boards" / f"{board}.toml").read_text()
    return text.replace("{{site}}", site).replace("{{device_id}}", device_id).replace("{{broker}}", broker)


@pytest.mark.parametrize("board", sorted(BOARD_SOURCES))
def test_board_template_renders_to_a_valid_config(board, tmp_path):
    config = tmp_path / "edge.toml"
    config.write_text(render(board, "north", "pi-01", "mqtts://broker.example.org:8883"))
    assert "{{" not in config.read_text()
    settings = load_settings(config)
    assert (settings.device.site, settings.device.device_id) == ("north", "pi-01")
    assert settings.camera.source.startswith(BOARD_SOURCES[board])
    assert settings.mqtt.url == "mqtts://broker.example.org:8883"
    etc = Path("/etc/edge")
    assert (settings.mqtt.ca_file, settings.mqtt.cert_file, settings.mqtt.key_file) == (
        etc / "ca.crt",
        etc / "device.crt",
        etc / "device.key",
    )
    fleet = settings.fleet
    assert (fleet.signing_public_key, fleet.device_key) == (etc / "fleet-signing.pub", etc / "box.key")
    assert settings.device.state_dir == Path("/var/lib/edge")


def _publish_results(port: int, user: str, topics: list[str]) -> dict[str, str]:
    """Publish QoS 1 to each topic as `user`; the broker's PUBACK reason code per topic (MQTT 5)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.username_pw_set(user, "pw")
    acked: dict[int, str] = {}
    done = threading.Condition()

    def on_publish(c, u, mid, reason_code, properties) -> None:
        with done:
            acked[mid] = str(reason_code)
            done.notify_all()

    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        mids = {t: client.publish(t, "{}", qos=1).mid for t in topics}
        with done:
            assert done.wait_for(lambda: all(m in acked for m in mids.values()), timeout=10)
        return {t: acked[m] for t, m in mids.items()}
    finally:
        client.disconnect()
        client.loop_stop()


def test_acl_lets_a_device_write_only_under_its_own_root(broker_factory):
    broker = broker_factory(users={"north/pi-01": "pw", "central": "pw"}, acl=(FIRMWARE / "acl").read_text())
    own = ["edge/north/pi-01/status", "edge/north/pi-01/match", "edge/north/pi-01/stats"]
    foreign = ["edge/north/pi-02/match", "edge/south/pi-01/status", "edge/north/pi-01/config/set"]
    results = _publish_results(broker.port, "north/pi-01", own + foreign)
    assert all(results[t] != "Not authorized" for t in own), results
    assert all(results[t] == "Not authorized" for t in foreign), results
    central = _publish_results(broker.port, "central", ["edge/north/pi-01/config/set", "edge/north/pi-01/match"])
    assert central["edge/north/pi-01/config/set"] != "Not authorized"
    assert central["edge/north/pi-01/match"] == "Not authorized"
