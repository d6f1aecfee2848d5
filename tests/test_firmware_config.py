"""What goes onto a board: the config template loads, and the broker ACL fences each device."""

from __future__ import annotations

import threading
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import load_settings

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware-config"


def test_device_config_template_is_valid():
    settings = load_settings(FIRMWARE / "edge.toml")
    assert settings.device.device_id == "pi-01" and settings.mqtt.url.startswith("mqtts://")


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
