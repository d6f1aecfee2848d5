"""Remote configuration end to end: a real `edge run` process on an MJPEG camera, a real
Mosquitto, `edge fleet config set` and hand-made `config/set` messages, good and bad.

The device reads its settings from a TOML file (a command-line flag would outrank the remote
overlay, and the device would refuse every change of that key as shadowed).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import test_device_e2e
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from support_camera import MjpegCamera
from support_wait import wait_until
from test_device_e2e import unique_events

from edge.cli import main
from edge.device.audit import AUDIT_LOG, AuditLog
from edge.device.inbox import Inbox, Refused, require_newer
from edge.device.overlay import MAX_MESSAGE_BYTES, OVERLAY_FILE, SETTABLE, Overlay, check_keys
from edge.link.signed import load_private_key, sign, write_public_key

gallery, slideshow, slideshow_jpegs = (
    test_device_e2e.gallery,
    test_device_e2e.slideshow,
    test_device_e2e.slideshow_jpegs,
)
ROOT = "edge/test/cam-1"
THRESHOLD = 0.5  # the device's configured knob, which the remote changes move
NEW_THRESHOLD = 0.45
ROLLBACK_S = 4


# -- the parts, without a device -------------------------------------------------------------


def test_settable_keys_are_the_documented_ones_and_never_identity_broker_or_keys():
    assert {"match.threshold", "match.target_fmr", "camera.source", "models.detector", "stats.window_s"} <= SETTABLE
    assert {"quality.min_size_px", "tracker.min_iou", "models.tile_px"} <= SETTABLE
    for key in SETTABLE:
        assert not key.startswith(("device.", "mqtt.", "fleet.", "homeassistant."))
    assert not {"match.gallery", "models.models_dir", "models.embedder"} & SETTABLE
    page = (Path(__file__).parents[1] / "docs" / "pages" / "fleet.md").read_text()
    section = page.split("## Remote configuration", 1)[1].split("\n## ", 1)[0]
    assert all(f"`{key}`" in section for key in SETTABLE), "the fleet page lists every remotely settable key"


@pytest.mark.parametrize(
    ("set_", "unset", "reason"),
    [
        ({"device.site": "x"}, [], "device.site cannot be set remotely"),
        ({"mqtt.url": "mqtt://evil:1883"}, [], "mqtt.url cannot be set remotely"),
        ({}, ["fleet.signing_public_key"], "fleet.signing_public_key cannot be set remotely"),
        ({"match.gallery": "/tmp/g.sqlite"}, [], "match.gallery cannot be set remotely"),
        ({"match.treshold": 0.4}, [], "match.treshold is not a setting"),
        ({"match.threshold": "0.4"}, [], "match.threshold: Input should be a valid number"),
        ({"camera.width": 640.5}, [], "camera.width: Input should be a valid integer"),
        ({"match.threshold": 0.4}, ["match.threshold"], "both set and unset"),
    ],
)
def test_keys_that_cannot_be_set_remotely_name_themselves(set_, unset, reason):
    with pytest.raises(Refused, match=reason):
        check_keys(set_, unset)


def test_overlay_keeps_its_version_and_the_last_good_settings_through_a_trial():
    first = Overlay().changed({"match.threshold": 0.45}, [], 10)
    assert first.trial and first.good == {} and first.version == 10
    second = first.changed({"quality.min_size_px": 30.0}, ["match.threshold"], 11)
    assert second.settings == {"quality": {"min_size_px": 30.0}} and second.good == {}, "still on trial: fall back"
    assert second.rolled_back() == Overlay({}, 11)
    confirmed = first.confirmed()
    assert confirmed.changed({}, ["match.threshold"], 12).good == {"match": {"threshold": 0.45}}
    assert json.loads(first.encode())["_meta"]["version"] == 10


def test_inbox_refuses_oversize_and_overflow_without_queueing_them():
    inbox = Inbox(max_bytes=100, max_items=2)
    for payload in (b"{}", b"x" * 101, b"{}", b"{}"):
        inbox.offer("t", payload)
    got = [inbox.take(0) for _ in range(5)]
    assert got[0].payload == b"{}" and got[1].payload is None and "101 bytes" in got[1].refused
    assert got[2].payload is None and "2 messages" in got[2].refused
    assert got[3] is not None and got[3].payload is None and got[4] is None
    with pytest.raises(Refused, match="not newer"):
        require_newer(5, 5, "config")


def test_audit_log_is_private_and_one_line_per_entry(tmp_path):
    audit = AuditLog(tmp_path / AUDIT_LOG)
    audit.append("config", "rejected", version=3, reason="bad signature", keys=["match.threshold"])
    audit.append("config", "applied", version=4, keys=[])
    lines = [json.loads(line) for line in (tmp_path / AUDIT_LOG).read_text().splitlines()]
    assert [e["outcome"] for e in lines] == ["rejected", "applied"] and lines[0]["keys"] == ["match.threshold"]
    assert (tmp_path / AUDIT_LOG).stat().st_mode & 0o777 == 0o600


# -- a running device ------------------------------------------------------------------------


class Device:
    """`edge run --config FILE` as a subprocess: start, stop (SIGTERM), kill (SIGKILL)."""

    def __init__(self, config: Path, log: Path) -> None:
        self.command = [sys.executable, "-m", "edge.cli", "run", "--config", str(config)]
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=log)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.alive():
            self.process.send_signal(sig)
            self.process.wait(60)


@pytest.fixture
def fleet(tmp_path) -> Path:
    folder = tmp_path / "fleet"
    assert main(["fleet", "init", str(folder)]) == 0
    device = folder / "devices" / "test" / "cam-1"
    device.mkdir(parents=True)
    write_public_key(device / "box.pub", X25519PrivateKey.generate().public_key())
    return folder


@pytest.fixture
def fleet_key(fleet) -> Ed25519PrivateKey:
    return load_private_key(fleet / "signing.key", Ed25519PrivateKey, "fleet signing key")


@pytest.fixture
def camera(slideshow_jpegs):
    cam = MjpegCamera(lambda n: slideshow_jpegs[n % len(slideshow_jpegs)], fps=25).start()
    yield cam
    cam.stop()


@pytest.fixture
def device(tmp_path, broker, fleet, gallery, camera):
    config = tmp_path / "edge.toml"
    config.write_text(
        f"""
[device]
device_id = "cam-1"
site = "test"
state_dir = "{tmp_path / "state"}"
[camera]
source = "{camera.url}"
reconnect_max_s = 1
[models]
detector = "blazeface_short_range"
[match]
gallery = "{gallery}"
threshold = {THRESHOLD}
[mqtt]
url = "{broker.url}"
connect_timeout_s = 15
[stats]
window_s = 1
[fleet]
signing_public_key = "{fleet / "signing.pub"}"
rollback_after_s = {ROLLBACK_S}
"""
    )
    dev = Device(config, tmp_path / "device.log")
    yield dev
    dev.stop(signal.SIGKILL)


def reports(sub) -> list[dict]:
    return [json.loads(m.payload) for m in sub.messages(f"{ROOT}/config/reported")]


def rejections(sub) -> list[dict]:
    return [r for r in reports(sub) if r.get("status") == "rejected"]


def answers(sub, version: int) -> list[dict]:
    return [r for r in reports(sub) if r.get("answered_version") == version]


def answer(sub, version: int, timeout: float = 60) -> dict:
    """The device's config/reported answering `version`."""
    assert wait_until(lambda: any(r.get("answered_version") == version for r in reports(sub)), timeout), version
    return [r for r in reports(sub) if r.get("answered_version") == version][-1]


def started(sub, device: Device, timeout: float = 90) -> dict:
    """Start the device; its first config/reported (published at every start)."""
    before = len(reports(sub))
    device.start()
    assert wait_until(lambda: len(reports(sub)) > before, timeout), device.log.read_text()[-3000:]
    return reports(sub)[before]


def frames_flowing(sub, after: int) -> bool:
    """A stats window with frames arrived after the first `after` stats messages."""
    stats = [json.loads(m.payload) for m in sub.messages(f"{ROOT}/stats")][after:]
    return any(s["frames"] > 0 for s in stats)


def message(key: Ed25519PrivateKey, version: int, set_: dict | None = None, unset: list | None = None) -> bytes:
    body = {"version": version, "issued_at": "2030-01-01T00:00:00Z", "set": set_ or {}, "unset": unset or []}
    return json.dumps(sign(body, key)).encode()


def audit_lines(tmp_path) -> list[dict]:
    """The audit log's complete lines: the device may be appending one as the test reads."""
    path = tmp_path / "state" / AUDIT_LOG
    complete = path.read_text().split("\n")[:-1] if path.exists() else []
    return [json.loads(line) for line in complete]


def fleet_set(fleet, broker, *args: str) -> int:
    return main(["fleet", "config", "set", "test/cam-1", *args, "--fleet", str(fleet), "--broker", broker.url])


def test_a_signed_change_applies_between_frames_is_reported_and_survives_a_restart(
    device, broker, fleet, subscriber_factory, tmp_path, capsys
):
    sub = subscriber_factory(broker.port, [f"{ROOT}/#"])
    first = started(sub, device)
    assert first["version"] == 0 and first["config"]["match"]["threshold"] == THRESHOLD
    assert wait_until(lambda: unique_events(sub), timeout=60), "no match before the change"

    capsys.readouterr()
    assert fleet_set(fleet, broker, f"match.threshold={NEW_THRESHOLD}", "--version", "7", "--wait", "60") == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["status"] == "applied" and printed["version_in_force"] == 7
    report = answer(sub, 7)
    assert report["version"] == 7 and report["status"] == "applied" and report["last_error"] is None
    assert report["config"]["match"]["threshold"] == NEW_THRESHOLD
    assert report["config"]["operating_point"]["threshold"] == NEW_THRESHOLD
    status = json.loads(sub.messages(f"{ROOT}/status")[-1].payload)
    assert status["details"]["config_version"] == 7 and status["details"]["threshold"] == NEW_THRESHOLD

    seen = len(unique_events(sub))
    assert wait_until(lambda: any(e["threshold"] == NEW_THRESHOLD for e in unique_events(sub)[seen:]), 60)
    thresholds = [e["threshold"] for e in unique_events(sub)]
    first_new = thresholds.index(NEW_THRESHOLD)
    assert set(thresholds[first_new:]) == {NEW_THRESHOLD}, "an event of the old threshold after the new one"
    assert all(e["score"] <= e["threshold"] for e in unique_events(sub))

    overlay = Overlay.read(tmp_path / "state" / OVERLAY_FILE)
    assert overlay.version == 7 and overlay.settings == {"match": {"threshold": NEW_THRESHOLD}}
    assert [(e["outcome"], e["version"], e["keys"]) for e in audit_lines(tmp_path)] == [
        ("applied", 7, ["match.threshold"])
    ]

    device.stop()
    again = started(sub, device)
    assert again["version"] == 7 and again["config"]["match"]["threshold"] == NEW_THRESHOLD
    seen = len(unique_events(sub))
    assert wait_until(lambda: len(unique_events(sub)) > seen, timeout=60)
    assert {e["threshold"] for e in unique_events(sub)[seen:]} == {NEW_THRESHOLD}


def test_refused_changes_change_nothing_and_each_is_reported_with_its_reason(
    device, broker, fleet, fleet_key, subscriber_factory, tmp_path
):
    sub = subscriber_factory(broker.port, [f"{ROOT}/#"])
    started(sub, device)
    assert fleet_set(fleet, broker, "quality.min_size_px=30", "--version", "100", "--wait", "60") == 0
    overlay_bytes = (tmp_path / "state" / OVERLAY_FILE).read_bytes()
    stranger = Ed25519PrivateKey.generate()
    tampered = json.loads(message(fleet_key, 101, {"match.threshold": 0.45}))
    tampered["set"]["match.threshold"] = 1.5
    cases = [
        (message(stranger, 101, {"match.threshold": 0.45}), "bad signature"),
        (json.dumps(tampered).encode(), "bad signature"),
        (json.dumps({"version": 101, "set": {"match.threshold": 0.45}}).encode(), "unsigned"),
        (message(fleet_key, 100, {"match.threshold": 0.45}), "not newer"),
        (message(fleet_key, 50, {"match.threshold": 0.45}), "not newer"),
        (message(fleet_key, 102, {"device.state_dir": "/tmp"}), "device.state_dir cannot be set remotely"),
        (message(fleet_key, 103, {"match.threshold": 5}), "match.threshold: Input should be less than or equal to 2"),
        (message(fleet_key, 104, {"camera.source": ["a"]}), "camera.source"),
        (message(fleet_key, 105, {"match.target_fmr": 0.001}), "match.threshold and match.target_fmr"),
        (b"{not json", "not JSON"),
        (b"x" * (MAX_MESSAGE_BYTES + 1), "over the limit"),
    ]
    for i, (payload, reason) in enumerate(cases, start=1):
        sub.publish(f"{ROOT}/config/set", payload)
        assert wait_until(lambda n=i: len(rejections(sub)) == n, timeout=30), reason
        report = rejections(sub)[-1]
        assert reason in report["last_error"], (reason, report["last_error"])
        assert report["version"] == 100 and report["config"]["quality"]["min_size_px"] == 30
        assert len(audit_lines(tmp_path)) == i + 1
        assert audit_lines(tmp_path)[-1]["outcome"] == "rejected" and reason in audit_lines(tmp_path)[-1]["reason"]
        assert (tmp_path / "state" / OVERLAY_FILE).read_bytes() == overlay_bytes
    assert device.alive()


def test_a_camera_that_cannot_open_or_goes_dark_is_rolled_back(
    device, broker, fleet, subscriber_factory, slideshow_jpegs, tmp_path, capsys
):
    sub = subscriber_factory(broker.port, [f"{ROOT}/#"])
    started(sub, device)
    overlay = tmp_path / "state" / OVERLAY_FILE

    assert fleet_set(fleet, broker, f"camera.source=file:{tmp_path / 'missing.mp4'}", "--version", "1") == 0
    report = answer(sub, 1)
    assert report["status"] == "rolled_back" and "missing.mp4" in report["last_error"]
    assert report["version"] == 1 and Overlay.read(overlay) == Overlay({}, 1)
    seen = len(sub.messages(f"{ROOT}/stats"))
    assert wait_until(lambda: frames_flowing(sub, seen), timeout=30), "the old camera did not come back"

    def dies_after_a_second(n: int) -> bytes:
        if n == 25:  # the new camera opens, shows a second of frames, then goes dark for good
            threading.Thread(target=other.stop, daemon=True).start()
        return slideshow_jpegs[n % len(slideshow_jpegs)]

    other = MjpegCamera(dies_after_a_second, fps=25).start()
    try:
        assert fleet_set(fleet, broker, f"camera.source={other.url}", "--version", "2") == 0
        assert wait_until(lambda: [r["status"] for r in answers(sub, 2)] == ["applied", "rolled_back"], 60), (
            device.log.read_text()[-3000:]
        )
    finally:
        other.stop()
    rolled = answers(sub, 2)[-1]
    assert "no frame" in rolled["last_error"] and rolled["version"] == 2
    assert Overlay.read(overlay) == Overlay({}, 2)
    assert rolled["config"]["camera"]["source"] != other.url
    seen = len(sub.messages(f"{ROOT}/stats"))
    assert wait_until(lambda: frames_flowing(sub, seen), timeout=30), "the old camera did not come back"
    outcomes = [(e["outcome"], e["version"]) for e in audit_lines(tmp_path)]
    assert outcomes == [("rolled_back", 1), ("applied", 2), ("rolled_back", 2)]


def test_a_change_on_trial_that_keeps_the_device_from_starting_is_rolled_back_at_the_start(
    device, broker, subscriber_factory, camera, tmp_path
):
    """Restarted mid-trial into a camera that cannot open, the device starts on the last good config."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    on_trial = Overlay().changed({"camera.source": f"file:{tmp_path / 'missing.mp4'}"}, [], 7)
    (state / OVERLAY_FILE).write_bytes(on_trial.encode())
    sub = subscriber_factory(broker.port, [f"{ROOT}/#"])
    report = started(sub, device)
    assert report["status"] == "rolled_back" and report["answered_version"] == 7
    assert "missing.mp4" in report["last_error"] and report["config"]["camera"]["source"] == camera.url
    assert Overlay.read(state / OVERLAY_FILE) == Overlay({}, 7)
    assert wait_until(lambda: frames_flowing(sub, 0), timeout=30), device.log.read_text()[-3000:]
    assert [(e["outcome"], e["version"]) for e in audit_lines(tmp_path)] == [("rolled_back", 7)]


def test_sigkill_during_an_apply_leaves_the_old_or_the_new_configuration(
    device, broker, fleet_key, subscriber_factory, tmp_path
):
    sub = subscriber_factory(broker.port, [f"{ROOT}/#"])
    overlay = tmp_path / "state" / OVERLAY_FILE
    expected = {0: THRESHOLD}
    rng = random.Random(11)
    for version in range(1, 6):
        first = started(sub, device)
        in_force = first["version"]
        assert first["config"]["match"]["threshold"] == expected[in_force], "a mixture after SIGKILL"
        threshold = round(0.40 + 0.01 * version, 2)
        expected[version] = threshold
        sub.publish(f"{ROOT}/config/set", message(fleet_key, version, {"match.threshold": threshold}))
        time.sleep(rng.uniform(0.0, 0.3))
        device.stop(signal.SIGKILL)
        on_disk = Overlay.read(overlay)  # whole JSON, old or new
        assert on_disk.version in (in_force, version)
        assert on_disk.settings.get("match", {}).get("threshold", THRESHOLD) == expected[on_disk.version]
    last = started(sub, device)
    assert last["config"]["match"]["threshold"] == expected[last["version"]]
    assert not list((tmp_path / "state").glob(".remote-config.json.*.tmp")), "a killed write's leftover"


def bad_messages(key: Ed25519PrivateKey, in_force: int, count: int) -> list[bytes]:
    """`count` config/set messages the device must refuse, of every kind, in a fixed random order."""
    rng = random.Random(500)
    stranger = Ed25519PrivateKey.generate()
    good = {"match.threshold": 0.45}

    def tampered() -> bytes:
        m = json.loads(message(key, in_force + rng.randint(1, 10**6), good))
        m["set"]["match.threshold"] = rng.choice([0.1, 1.9, 0.5])
        return json.dumps(m).encode()

    def signed_raw(body: dict) -> bytes:
        return json.dumps(sign(body, key)).encode()

    makers = [
        lambda: bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64))),  # noise
        lambda: message(key, in_force + 1, good)[: rng.randint(1, 60)],  # truncated JSON
        lambda: json.dumps(rng.choice([[], 1, "s", None, True])).encode(),  # not an object
        lambda: json.dumps({"version": in_force + 1, "set": good}).encode(),  # unsigned
        lambda: message(stranger, in_force + 1, good),  # wrong key
        tampered,
        lambda: message(key, rng.randint(0, in_force), good),  # replayed or stale
        lambda: signed_raw({"version": str(in_force + 1), "issued_at": "2030-01-01T00:00:00Z", "set": good}),
        lambda: signed_raw({"version": in_force + 1, "issued_at": "yesterday", "set": good}),
        lambda: signed_raw({"version": in_force + 1, "issued_at": "2030-01-01T00:00:00Z", "set": [1, 2]}),
        lambda: signed_raw({"version": in_force + 1, "issued_at": "2030-01-01T00:00:00Z", "extra": 1}),
        lambda: message(key, in_force + 1, {rng.choice(["device.site", "mqtt.url", "fleet.device_key"]): "x"}),
        lambda: message(key, in_force + 1, {f"match.no_such_{rng.randint(0, 99)}": 1}),
        lambda: message(key, in_force + 1, {"match.threshold": rng.choice(["0.4", [0.4], {"a": 1}, True])}),
        lambda: message(key, in_force + 1, {"match.threshold": rng.choice([-1, 0, 2.5, 100])}),
        lambda: message(key, in_force + 1, {"tracker.embed_attempts": rng.choice([0, 21, 1.5])}),
        lambda: message(key, in_force + 1, unset=["mqtt.url"]),
        lambda: b'{"version": 1, "set": {"a": "' + b"x" * (MAX_MESSAGE_BYTES + rng.randint(1, 1000)) + b'"}}',
    ]
    return [rng.choice(makers)() for _ in range(count)]


def test_500_bad_messages_change_nothing_and_are_each_refused_while_frames_keep_counting(
    device, broker, fleet, fleet_key, subscriber_factory, tmp_path
):
    sub = subscriber_factory(broker.port, [f"{ROOT}/#"])
    started(sub, device)
    assert fleet_set(fleet, broker, "quality.min_size_px=30", "--version", "1000", "--wait", "60") == 0
    overlay_bytes = (tmp_path / "state" / OVERLAY_FILE).read_bytes()
    # `--wait` saw the report on its own connection: this subscriber may get it a little later
    assert wait_until(lambda: any(r["status"] == "applied" and r["version"] == 1000 for r in reports(sub)), timeout=60)
    reported_before = len(reports(sub))
    stats_before = len(sub.messages(f"{ROOT}/stats"))
    messages = bad_messages(fleet_key, 1000, 500)
    for start in range(0, len(messages), 25):  # in bursts below the inbox's 64, each answered
        for payload in messages[start : start + 25]:
            sub.publish(f"{ROOT}/config/set", payload)
        done = 1 + min(start + 25, 500)
        assert wait_until(lambda n=done: len(audit_lines(tmp_path)) == n, timeout=60), start
    assert device.alive(), device.log.read_text()[-3000:]
    entries = audit_lines(tmp_path)[1:]
    assert len(entries) == 500 and {e["outcome"] for e in entries} == {"rejected"}
    assert all(e["reason"] for e in entries)
    assert wait_until(lambda: len(reports(sub)) - reported_before >= 500, timeout=60)
    answered = reports(sub)[reported_before:]
    assert all(r["status"] == "rejected" and r["last_error"] and r["version"] == 1000 for r in answered)
    assert all(r["config"]["quality"]["min_size_px"] == 30 for r in answered)
    assert (tmp_path / "state" / OVERLAY_FILE).read_bytes() == overlay_bytes
    assert frames_flowing(sub, stats_before), "frames stopped during the barrage"
    stats_now = len(sub.messages(f"{ROOT}/stats"))
    assert wait_until(lambda: frames_flowing(sub, stats_now), timeout=30)
    assert os.stat(tmp_path / "state" / AUDIT_LOG).st_mode & 0o777 == 0o600
