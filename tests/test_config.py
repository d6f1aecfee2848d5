"""Configuration: precedence, strictness, provenance and clear errors."""

from __future__ import annotations

import json

import pytest

from edge.config import ConfigError, load_settings, provenance, show


@pytest.fixture
def device_file(tmp_path):
    path = tmp_path / "edge.toml"
    path.write_text(
        '[device]\ndevice_id = "cam-7"\nsite = "north"\n[mqtt]\nurl = "mqtt://10.1.2.3:1883"\nkeepalive_s = 40\n'
    )
    return path


def test_defaults_are_valid():
    settings = load_settings()
    assert settings.models.threads == 2 and settings.mqtt.url.startswith("mqtt://")


def test_precedence_flag_env_overlay_file_default(tmp_path, device_file, monkeypatch):
    overlay = tmp_path / "overlay.json"
    overlay.write_text(
        json.dumps({"device": {"site": "from-overlay"}, "match": {"threshold": 0.5}, "mqtt": {"keepalive_s": 50}})
    )
    monkeypatch.setenv("EDGE_MQTT__KEEPALIVE_S", "60")
    monkeypatch.setenv("EDGE_MATCH__THRESHOLD", "0.45")
    s = load_settings(device_file, overlay, match={"threshold": 0.4})
    assert s.match.threshold == 0.4  # flag beats env
    assert s.mqtt.keepalive_s == 60  # env beats overlay and file
    assert s.device.site == "from-overlay"  # overlay beats file
    assert s.device.device_id == "cam-7"  # file beats default
    assert s.mqtt.url == "mqtt://10.1.2.3:1883"  # a section merges key by key
    assert s.stats.window_s == 60.0  # default
    origins = provenance(device_file, overlay, match={"threshold": 0.4})
    assert origins["match.threshold"] == "flag"
    assert origins["mqtt.keepalive_s"] == "env"
    assert origins["device.site"].startswith("remote overlay")
    assert origins["device.device_id"].startswith("file")
    text = show(s, origins)
    assert "stats.window_s" in text and "# default" in text and "# flag" in text


def test_unknown_key_in_file_is_an_error(tmp_path):
    path = tmp_path / "edge.toml"
    path.write_text('[mqtt]\nhots = "typo"\n')
    with pytest.raises(ConfigError, match="mqtt.hots: Extra inputs are not permitted"):
        load_settings(path)


def test_invalid_value_names_key_and_problem():
    with pytest.raises(ConfigError, match=r"models.threads: Input should be greater than or equal to 1 \(got 0\)"):
        load_settings(models={"threads": 0})


def test_invalid_env_value(monkeypatch):
    monkeypatch.setenv("EDGE_STATS__WINDOW_S", "soon")
    with pytest.raises(ConfigError, match="stats.window_s"):
        load_settings()


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


@pytest.mark.parametrize("text", ["[mqtt\nurl=", "\xff\xfe[mqtt]"], ids=["syntax", "not-utf8"])
def test_malformed_toml_names_the_file(tmp_path, text):
    path = tmp_path / "edge.toml"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ConfigError, match=f"cannot read {path}"):
        load_settings(path)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"], ids=["syntax", "not-an-object"])
def test_malformed_overlay_names_the_file(tmp_path, text):
    overlay = tmp_path / "remote-config.json"
    overlay.write_text(text)
    with pytest.raises(ConfigError, match=f"cannot read {overlay}"):
        load_settings(None, overlay)


def test_utf8_byte_order_mark_is_accepted(tmp_path):
    path, overlay = tmp_path / "edge.toml", tmp_path / "remote-config.json"
    path.write_text('[device]\ndevice_id = "bom"\n', encoding="utf-8-sig")
    overlay.write_text('{"device": {"site": "bom-site"}}', encoding="utf-8-sig")
    s = load_settings(path, overlay)
    assert (s.device.device_id, s.device.site) == ("bom", "bom-site")
    assert provenance(path, overlay)["device.site"].startswith("remote overlay")


@pytest.mark.parametrize("variable", ["EDGE_MQTT_URL", "EDGE_MQTT__URLL", "EDGE_CAMERAS__SOURCE"])
def test_unknown_edge_variable_is_an_error(monkeypatch, variable):
    monkeypatch.setenv(variable, "mqtt://10.9.9.9:1883")
    with pytest.raises(ConfigError, match=variable):
        load_settings()


def test_unknown_edge_variable_suggests_the_nested_name(monkeypatch):
    monkeypatch.setenv("EDGE_MQTT_URL", "mqtt://10.9.9.9:1883")
    with pytest.raises(ConfigError, match="EDGE_MQTT__URL"):
        load_settings()


def test_edge_variables_of_other_parts_are_not_settings(monkeypatch):
    monkeypatch.setenv("EDGE_CONFIG", "/nowhere.toml")
    monkeypatch.setenv("EDGE_MODELS_DIR", "/nowhere")
    monkeypatch.setenv("EDGE_MQTT", '{"keepalive_s": 45}')  # a whole section as JSON
    assert load_settings().mqtt.keepalive_s == 45


@pytest.mark.parametrize("value", [float("inf"), 1e300, float("nan")])
@pytest.mark.parametrize("key", ["mqtt.connect_timeout_s", "camera.reconnect_max_s", "stats.window_s"])
def test_unusable_durations_are_rejected(key, value):
    section, name = key.split(".")
    with pytest.raises(ConfigError, match=key):
        load_settings(**{section: {name: value}})


def test_paired_credentials():
    with pytest.raises(ConfigError, match="username and mqtt.password go together"):
        load_settings(mqtt={"username": "dev"})


def test_password_masked_in_show():
    s = load_settings(mqtt={"username": "dev", "password": "s3cret"})
    assert "s3cret" not in show(s, {}) and '"***"' in show(s, {})
