"""Secrets never printed or published: one masking helper for `config show`, `config/reported` and logs."""

from __future__ import annotations

import json

import pytest

from edge.config import load_settings, provenance, show
from edge.device.parts import effective_config
from edge.device.sources import mask_uri
from edge.redact import masked
from edge.vision.operating_point import OperatingPoint

SECRET = "s3cr3t-P@ss"
SOURCES = [
    f"rtsp://admin:{SECRET}@10.0.0.5:554/stream1",
    f"http://admin:{SECRET}@cam.local/video.mjpg",
    f"https://admin:{SECRET}@cam.local/video.mjpg",
    f"gst:rtspsrc location=rtsp://admin:{SECRET}@10.0.0.5/s latency=0 ! decodebin ! videoconvert ! appsink",
]
POINT = OperatingPoint(0.41, 0.01, 0.01, "worst_group", "manifest default")


@pytest.mark.parametrize("source", SOURCES)
def test_source_password_masked_in_show_reported_and_logs(source):
    settings = load_settings(
        camera={"source": source},
        mqtt={"url": f"mqtts://dev:{SECRET}@broker:8883", "username": "dev", "password": SECRET},
    )
    shown = show(settings, provenance())
    reported = json.dumps(effective_config(settings, POINT))
    for text in (shown, reported, mask_uri(source)):
        assert SECRET not in text and "s3cr3t" not in text
        assert "admin:***@" in text or "dev:***@" in text
    assert "10.0.0.5" in mask_uri(source) or "cam.local" in mask_uri(source)  # only the password goes


def test_secret_keys_masked_paths_kept():
    data = {
        "mqtt": {"password": SECRET, "key_file": "/etc/edge/client.key", "username": "dev"},
        "api_token": SECRET,
        "client_secret": SECRET,
        "nested": [{"url": f"mqtt://u:{SECRET}@h:1883/?token={SECRET}"}],
        "unset": {"password": None},
    }
    out = masked(data)
    assert SECRET not in json.dumps(out)
    assert out["mqtt"] == {"password": "***", "key_file": "/etc/edge/client.key", "username": "dev"}
    assert out["unset"]["password"] is None  # "not set" stays visible
    assert out["nested"][0]["url"].startswith("mqtt://u:***@h:1883/")


def test_rejected_secret_not_echoed_in_error():
    from edge.config import ConfigError

    with pytest.raises(ConfigError) as e:
        load_settings(mqtt={"username": "dev", "password": 271828182})
    assert "mqtt.password" in str(e.value) and "271828182" not in str(e.value)
