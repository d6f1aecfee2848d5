"""A board provisioned from one bundle: `edge fleet provision`, `install.sh --root`, then `edge run`
from the installed venv and config against a real Mosquitto with the fleet's TLS listener and ACL.

The bundle is for this machine (board usb, its CPU and Python), so the installed venv runs here.
Its wheels are downloaded once per module (pip's own cache makes a rerun quick); the second
device is provisioned offline from the first bundle's wheels.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from support_fleet import TlsClient, fleet_broker

from edge.central.fleet.folder import FleetDir
from edge.central.fleet.pki import common_name, load_certificate
from edge.central.fleet.wheels import Target, missing_requirements
from edge.cli import main
from edge.config import load_settings
from local_broker import free_port

ENROLLED = ["marco_antonio_barrera", "li_peng"]  # two of the slideshow's people, from other photos
BUNDLE_FILES = ["install.sh", "firstboot.sh", "edge.service", "edge.toml", "bundle.json"]
CERTS = ["ca.crt", "device.crt", "device.key", "fleet-signing.pub", "box.key"]
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory) -> tuple[FleetDir, Path, int]:
    """A fleet and the bundle of north/pi-01 for a broker on localhost:port (started by each test)."""
    if platform.machine() not in ("x86_64", "aarch64"):
        pytest.skip(f"bundles are for x86_64 and aarch64, not {platform.machine()}")
    root = tmp_path_factory.mktemp("fleet")
    port = free_port()
    assert main(["fleet", "init", str(root / "fleet")]) == 0
    bundle = root / "bundle"
    args = ["fleet", "provision", "--fleet", str(root / "fleet"), "--site", "north", "--device-id", "pi-01"]
    args += ["--broker", f"mqtts://localhost:{port}", "--board", "usb", "--arch", platform.machine()]
    assert main([*args, "--python-version", PYTHON_VERSION, "--out", str(bundle)]) == 0
    return FleetDir(root / "fleet"), bundle, port


def test_bundle_holds_everything_the_board_needs(provisioned):
    fleet, bundle, port = provisioned
    assert all((bundle / f).is_file() for f in BUNDLE_FILES)
    assert all((bundle / "certs" / f).is_file() for f in CERTS)
    for private in ("device.key", "box.key"):
        assert stat.S_IMODE((bundle / "certs" / private).stat().st_mode) == 0o600
    cert = load_certificate(bundle / "certs" / "device.crt", "device")
    assert common_name(cert) == "north/pi-01"
    cert.verify_directly_issued_by(load_certificate(fleet.ca_cert, "CA"))
    assert (fleet.device_dir("north", "pi-01") / "box.pub").is_file()
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert manifest["board"] == "usb" and manifest["site"] == "north" and manifest["device_id"] == "pi-01"
    assert manifest["broker"] == f"mqtts://localhost:{port}" and manifest["arch"] == platform.machine()
    settings = load_settings(bundle / "edge.toml")
    assert (settings.device.site, settings.device.device_id) == ("north", "pi-01")
    assert settings.mqtt.url == f"mqtts://localhost:{port}"
    assert settings.fleet.signing_public_key == Path("/etc/edge/fleet-signing.pub")
    wheels = sorted(p.name for p in (bundle / "wheels").glob("*.whl"))
    assert any(w.startswith("edge-") for w in wheels) and any(w.startswith("ai_edge_litert-") for w in wheels)
    assert not any(w.startswith(("matplotlib", "dlib", "tensorflow")) for w in wheels), wheels
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o700
    assert stat.S_IMODE(bundle.with_name("bundle.tar.gz").stat().st_mode) == 0o600
    with tarfile.open(bundle.with_name("bundle.tar.gz")) as tar:
        names = set(tar.getnames())
    assert {f"bundle/{f}" for f in BUNDLE_FILES} | {f"bundle/certs/{f}" for f in CERTS} <= names


def test_second_device_from_the_first_bundle_wheels_and_no_second_pi_01(provisioned, tmp_path, capsys):
    fleet, bundle, port = provisioned
    wheel = next((bundle / "wheels").glob("edge-*.whl"))
    args = ["fleet", "provision", "--fleet", str(fleet.root), "--site", "north", "--board", "usb"]
    args += ["--broker", f"mqtts://localhost:{port}", "--arch", platform.machine(), "--python-version", PYTHON_VERSION]
    offline = ["--wheel", str(wheel), "--wheels-from", str(bundle / "wheels")]
    assert main([*args, "--device-id", "pi-02", *offline, "--out", str(tmp_path / "pi-02")]) == 0
    assert sorted(p.name for p in (tmp_path / "pi-02" / "wheels").iterdir()) == sorted(
        p.name for p in (bundle / "wheels").iterdir()
    )
    assert common_name(load_certificate(tmp_path / "pi-02" / "certs" / "device.crt", "device")) == "north/pi-02"
    capsys.readouterr()
    assert main([*args, "--device-id", "pi-01", *offline, "--out", str(tmp_path / "again")]) == 1
    assert "already provisioned" in capsys.readouterr().err
    assert not (tmp_path / "again").exists()


def test_wheels_follow_the_board_python_not_the_one_pip_runs_on(provisioned):
    if sys.version_info < (3, 11):
        pytest.skip("needs a Python whose markers differ from 3.10's (tomli)")
    _, bundle, _ = provisioned
    assert missing_requirements(Target(platform.machine(), PYTHON_VERSION), bundle / "wheels") == []
    # pip evaluated `tomli; python_version < "3.11"` for this Python: a 3.10 board needs more.
    assert missing_requirements(Target(platform.machine(), "3.10"), bundle / "wheels") == ["tomli>=1.1"]


def _enroll_images(data_dir: Path) -> dict[str, list[str]]:
    shown = {r["source_path"] for r in csv.DictReader(open(data_dir / "videos" / "lfw_slideshow.csv"))}
    identities = list(csv.DictReader(open(data_dir / "identities.csv")))
    return {
        who: [str(data_dir / r["path"]) for r in identities if r["identity"] == who and r["path"] not in shown]
        for who in ENROLLED
    }


def test_installed_bundle_runs_and_the_broker_fences_it(provisioned, tmp_path, broker_factory, data_dir):
    fleet, bundle, port = provisioned
    root = tmp_path / "root"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    installed = subprocess.run(
        ["sh", str(bundle / "install.sh"), "--root", str(root)],
        env={**env, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr
    edge = root / "opt" / "edge" / "venv" / "bin" / "edge"
    etc, state = root / "etc" / "edge", root / "var" / "lib" / "edge"
    # The installed edge.toml as it is, with its absolute paths moved under the root.
    env |= {
        "EDGE_CONFIG": str(etc / "edge.toml"),
        "EDGE_MQTT__CA_FILE": str(etc / "ca.crt"),
        "EDGE_MQTT__CERT_FILE": str(etc / "device.crt"),
        "EDGE_MQTT__KEY_FILE": str(etc / "device.key"),
        "EDGE_FLEET__SIGNING_PUBLIC_KEY": str(etc / "fleet-signing.pub"),
        "EDGE_FLEET__DEVICE_KEY": str(etc / "box.key"),
        "EDGE_DEVICE__STATE_DIR": str(state),
        "EDGE_MATCH__GALLERY": str(state / "gallery.sqlite"),
        "EDGE_MODELS__DETECTOR": "blazeface_short_range",  # close-up portraits
        "EDGE_CAMERA__SOURCE": f"file:{data_dir / 'videos' / 'lfw_slideshow.mp4'}",
    }
    for who, images in _enroll_images(data_dir).items():
        enrolled = subprocess.run(
            [str(edge), "enroll", "--gallery", env["EDGE_MATCH__GALLERY"], "--name", who, "--id", who, *images],
            env=env,
            capture_output=True,
            text=True,
        )
        assert enrolled.returncode == 0, enrolled.stderr

    broker = fleet_broker(broker_factory, fleet.root, tmp_path / "broker", port)
    central = TlsClient(port, fleet.ca_cert, fleet.central_cert, fleet.central_key)
    try:
        assert central.subscribe("#") == "Granted QoS 1"  # the ACL lets the centre hear edge/# only
        ran = subprocess.run([str(edge), "run"], env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert ran.returncode == 0, ran.stderr[-3000:]
        assert "u'north/pi-01'" in broker.log()  # logged in as its certificate's CN
        assert central.wait_for(lambda t: "edge/north/pi-01/stats" in t and t.count("edge/north/pi-01/status") >= 2)
        topics = set(central.topics())
        assert all(t.startswith("edge/north/pi-01/") for t in topics), topics
        matches = [json.loads(m.payload) for m in central.messages if m.topic == "edge/north/pi-01/match"]
        assert matches and {m["identity_id"] for m in matches} <= set(ENROLLED)
        statuses = [json.loads(m.payload) for m in central.messages if m.topic == "edge/north/pi-01/status"]
        assert statuses[0]["state"] == "online" and statuses[-1]["state"] == "offline"
        software = json.loads((bundle / "bundle.json").read_text())["software_version"]
        assert statuses[0]["versions"]["software"] == software

        # The same certificate, used by hand: its own root only.
        device = TlsClient(port, etc / "ca.crt", etc / "device.crt", etc / "device.key")
        try:
            assert device.publish("edge/north/pi-02/status") == "Not authorized"
            assert device.publish("edge/south/pi-01/match") == "Not authorized"
            assert device.subscribe("edge/north/pi-02/config/set") in ("Granted QoS 1", "Not authorized")
            assert device.subscribe("edge/north/pi-01/config/set") == "Granted QoS 1"
            assert central.publish("edge/north/pi-02/config/set", "not for pi-01") == "Success"
            assert central.publish("edge/north/pi-01/config/set", "for pi-01") == "Success"
            assert device.wait_for(lambda t: len(t) >= 1)
            assert device.topics() == ["edge/north/pi-01/config/set"]  # in order: pi-02's was never delivered
            assert "edge/north/pi-02/status" not in central.topics()
        finally:
            device.stop()
    finally:
        central.stop()
