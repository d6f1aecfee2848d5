"""What goes onto a board: the board templates, install.sh and first boot, the unit, the broker ACL."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import threading
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge import __version__
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


CERTS = ["ca.crt", "device.crt", "device.key", "fleet-signing.pub", "box.key"]
PRIVATE = {"device.key", "box.key"}


def make_bundle(folder: Path, wheels: Path, board: str = "usb") -> Path:
    """A bundle folder laid out as `edge fleet provision` writes it, by hand (the key files are
    stand-ins: install.sh copies them, it does not read them)."""
    (folder / "certs").mkdir(parents=True)
    shutil.copy2(FIRMWARE / "install.sh", folder)
    shutil.copy2(FIRMWARE / "edge.service", folder)
    (folder / "edge.toml").write_text(render(board, "north", "pi-01", "mqtts://broker.example.org:8883"))
    for name in CERTS:
        (folder / "certs" / name).write_text(f"{name} of north/pi-01\n")
    versions = {"edge": __version__}
    (folder / "bundle.json").write_text(
        json.dumps({"board": board, "site": "north", "device": "pi-01", "versions": versions})
    )
    (folder / "wheels").symlink_to(wheels)
    return folder


def sh(script: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(script), *args], capture_output=True, text=True, env=env, timeout=600)


def installed_version(root: Path) -> str:
    return subprocess.run([str(root / "opt/edge/venv/bin/edge"), "--version"], capture_output=True, text=True).stdout


def test_install_sh_installs_a_bundle_into_a_root_and_upgrades_on_a_rerun(edge_wheels, tmp_path):
    bundle = make_bundle(tmp_path / "bundle", edge_wheels)
    root = tmp_path / "root"
    result = sh(bundle / "install.sh", "--root", str(root))
    assert result.returncode == 0, result.stderr
    assert installed_version(root).strip() == f"edge {__version__}"
    etc = root / "etc" / "edge"
    assert (etc / "edge.toml").read_text() == (bundle / "edge.toml").read_text()
    for name in CERTS:
        assert (etc / name).read_text() == (bundle / "certs" / name).read_text()
        assert stat.S_IMODE((etc / name).stat().st_mode) == (0o600 if name in PRIVATE else 0o644), name
    assert (root / "var/lib/edge").is_dir()
    unit = root / "etc/systemd/system/edge.service"
    assert unit.read_text() == (FIRMWARE / "edge.service").read_text()
    wants = root / "etc/systemd/system/multi-user.target.wants/edge.service"
    assert os.readlink(wants) == "/etc/systemd/system/edge.service"  # what `systemctl enable` makes
    assert "include-system-site-packages = false" in (root / "opt/edge/venv/pyvenv.cfg").read_text()
    shown = subprocess.run(
        [str(root / "opt/edge/venv/bin/edge"), "config", "show", "--config", str(etc / "edge.toml")],
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0 and 'device.site                           = "north"' in shown.stdout, shown.stderr

    (bundle / "edge.toml").write_text(render("usb", "north", "pi-01", "mqtts://other.example.org:8883"))
    again = sh(bundle / "install.sh", "--root", str(root))
    assert again.returncode == 0, again.stderr
    assert "other.example.org" in (etc / "edge.toml").read_text()
    assert installed_version(root).strip() == f"edge {__version__}"


def test_install_sh_refuses_an_incomplete_bundle_and_installs_nothing(edge_wheels, tmp_path):
    bundle = make_bundle(tmp_path / "bundle", edge_wheels)
    (bundle / "certs" / "device.key").unlink()
    result = sh(bundle / "install.sh", "--root", str(tmp_path / "root"))
    assert result.returncode == 1
    assert "certs/device.key is missing" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "root" / "opt").exists() and not (tmp_path / "root" / "etc").exists()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd"), reason="useradd --root needs root")
def test_install_sh_creates_the_edge_user_in_the_root_and_gives_it_the_keys(edge_wheels, tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\nvideo:x:44:\n")
    (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "etc/gshadow").write_text("root:*::\nvideo:!::\n")
    bundle = make_bundle(tmp_path / "bundle", edge_wheels)
    result = sh(bundle / "install.sh", "--root", str(root))
    assert result.returncode == 0, result.stderr
    edge = next(line.split(":") for line in (root / "etc/passwd").read_text().splitlines() if line.startswith("edge:"))
    uid, gid = int(edge[2]), int(edge[3])
    assert "edge" in next(g for g in (root / "etc/group").read_text().splitlines() if g.startswith("video:"))
    for name in PRIVATE:
        assert (root / "etc/edge" / name).stat().st_uid == uid
    assert (root / "var/lib/edge").stat().st_uid == uid and (root / "etc/edge").stat().st_gid == gid
    assert sh(bundle / "install.sh", "--root", str(root)).returncode == 0  # a rerun keeps the one user
    assert [line for line in (root / "etc/passwd").read_text().splitlines() if line.startswith("edge:")] == [
        ":".join(edge)
    ]


def test_first_boot_installs_the_bundle_from_the_boot_partition_and_removes_it(edge_wheels, tmp_path):
    boot = tmp_path / "boot"
    make_bundle(boot / "edge-bundle", edge_wheels, board="pi")
    shutil.copy2(FIRMWARE / "firstboot.sh", boot / "edge-firstboot.sh")
    root = tmp_path / "root"
    result = sh(boot / "edge-firstboot.sh", "--root", str(root), env={**os.environ, "EDGE_BOOT": str(boot)})
    assert result.returncode == 0, result.stderr
    assert installed_version(root).strip() == f"edge {__version__}"
    assert 'source = "picam:0"' in (root / "etc/edge/edge.toml").read_text()
    # picamera2 comes from apt: the Pi's venv sees the system's packages
    assert "include-system-site-packages = true" in (root / "opt/edge/venv/pyvenv.cfg").read_text()
    assert not (boot / "edge-bundle").exists()  # no device key left on the FAT partition
    nothing = sh(boot / "edge-firstboot.sh", "--root", str(root), env={**os.environ, "EDGE_BOOT": str(boot)})
    assert nothing.returncode == 0 and "nothing to install" in nothing.stdout


@pytest.mark.skipif(
    not shutil.which("systemd-analyze"), reason="systemd-analyze not installed (apt-get install systemd)"
)
def test_unit_passes_systemd_analyze_verify(edge_wheels, tmp_path):
    """The unit as installed, verified with its ExecStart pointed at the edge that install.sh put in
    the root: `verify` checks that the command exists, and /opt/edge/venv is not on this machine
    (`systemd-analyze --root` would need a whole systemd tree in the root, sysinit.target and on)."""
    bundle = make_bundle(tmp_path / "bundle", edge_wheels)
    root = tmp_path / "root"
    assert sh(bundle / "install.sh", "--root", str(root)).returncode == 0
    text = (root / "etc/systemd/system/edge.service").read_text()
    assert "\nExecStart=/opt/edge/venv/bin/edge run\n" in text
    assert "\nType=notify\n" in text and "\nWatchdogSec=" in text and "\nRestart=on-failure\n" in text
    units = tmp_path / "units"
    units.mkdir()
    (units / "edge.service").write_text(text.replace("ExecStart=/opt/edge/venv", f"ExecStart={root}/opt/edge/venv"))
    result = subprocess.run(["systemd-analyze", "verify", str(units / "edge.service")], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr  # unknown keys are warnings on stderr


def test_unit_sandbox_leaves_the_service_a_writable_temporary_directory():
    """ProtectSystem=strict makes every path read-only but /dev, /proc, /sys and ReadWritePaths; the
    loop needs a temporary directory (the model loader holds native stderr in one), so the unit must
    give it a private /tmp. The emulated first boot found a unit without one that could not start."""
    settings = dict(
        line.split("=", 1)
        for line in (FIRMWARE / "edge.service").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert settings["ProtectSystem"] == "strict"
    writable = settings.get("ReadWritePaths", "").split()
    assert settings.get("PrivateTmp") in {"yes", "true"} or "/tmp" in writable
