"""Remote commands that once locked a device out or made it report what it did not run (issue 18,
items 6 and 9), against a real `edge run` process and a real Mosquitto (as in
tests/test_remote_gallery.py, whose device and fixtures these are).

- Versions are the centre's Unix time in ms: one more than `CLOCK_SKEW_S` ahead of the device's
  clock is refused (it would make every later command stale), and one a device stored before it
  refused those is replaced at start, so the next command gets in.
- A push whose `gallery-push.json` cannot be written is refused with the old gallery in use; once
  the gallery is replaced, the push is accepted even if that file cannot be renamed into place.
- The audit log on the device's card is bounded.
"""

from __future__ import annotations

import json
import shutil
import time

import test_outbox
import test_remote_gallery
from support_cohort import cohort_for
from support_wait import wait_until
from test_gallery_live import REMOVED
from test_outbox import fill
from test_remote_config import answer
from test_remote_gallery import ROOT, bundle_of, embedder_of, fleet_key, push_message, statuses, wait_online

from edge.device.audit import AUDIT_LOG, AuditLog
from edge.device.inbox import CLOCK_SKEW_S
from edge.device.overlay import OVERLAY_FILE, Overlay
from edge.device.remote_gallery import PUSH_STATE
from edge.gallery import GalleryStore, encode_bundle
from edge.link.signed import sign

# Fixtures: a provisioned device (not started) on a camera; a 400 KB tmpfs.
camera, central_port, fleet, gallery, make_device, passers_by, slideshow, slideshow_jpegs = (
    test_remote_gallery.camera,
    test_remote_gallery.central_port,
    test_remote_gallery.fleet,
    test_remote_gallery.gallery,
    test_remote_gallery.make_device,
    test_remote_gallery.passers_by,
    test_remote_gallery.slideshow,
    test_remote_gallery.slideshow_jpegs,
)
small_disk = test_outbox.small_disk

FAR = 2**62  # within every payload's 64-bit bound, and 146 million years ahead
PROBED = 10**20  # what the probe of issue 18 had a device adopt, before versions were bounded


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def config_set(fleet_dir, version: int, set_: dict) -> bytes:
    body = {"version": version, "issued_at": "2026-01-01T00:00:00Z", "set": set_, "unset": []}
    return json.dumps(sign(body, fleet_key(fleet_dir))).encode()


def push_details(sub) -> dict:
    return statuses(sub)[-1]["details"] if statuses(sub) else {}


def push_refused(sub, version: int, why: str) -> bool:
    error = push_details(sub).get("gallery_push_error") or ""
    return error.startswith(f"push {version} refused") and why in error


def push_accepted(sub, version: int) -> bool:
    details = push_details(sub)
    return details.get("gallery_push_version") == version and details.get("gallery_push_error") is None


def test_versions_from_the_future_are_refused_and_lock_nothing_out(make_device, fleet, manifest, subscriber_factory):
    device = make_device(tls=False)
    sub = subscriber_factory(device.broker.port, [f"{ROOT}/#"])
    device.start()
    wait_online(sub, device)
    bundle_json = encode_bundle(bundle_of(device.gallery, embedder_of(manifest)))
    for ahead in (now_ms() + 2 * CLOCK_SKEW_S * 1000, FAR):
        sub.publish(f"{ROOT}/config/set", config_set(fleet, ahead, {"match.threshold": 0.45}))
        report = answer(sub, ahead)
        assert report["status"] == "rejected" and "ahead of this device's clock" in report["last_error"], report
        assert report["version"] == 0
        sub.publish(f"{ROOT}/gallery/set", push_message(fleet, bundle_json, ahead))
        assert wait_until(lambda v=ahead: push_refused(sub, v, "ahead of this device's clock"), 30)
        assert push_details(sub)["gallery_push_version"] == 0
    current = now_ms()
    sub.publish(f"{ROOT}/config/set", config_set(fleet, current, {"match.threshold": 0.45}))
    assert answer(sub, current)["status"] == "applied"
    sub.publish(f"{ROOT}/gallery/set", push_message(fleet, bundle_json, current))
    assert wait_until(lambda: push_accepted(sub, current), 30)
    assert device.stop() == 0


def test_a_version_from_the_future_stored_before_is_replaced_at_start_so_the_next_command_gets_in(
    make_device, fleet, manifest, subscriber_factory
):
    device = make_device(tls=False)
    device.state.mkdir(mode=0o700)
    (device.state / OVERLAY_FILE).write_bytes(Overlay({"match": {"threshold": 0.45}}, PROBED).encode())
    stored_push = {"version": FAR, "gallery_version": "g", "accepted_at": "2026-01-01T00:00:00Z"}
    (device.state / PUSH_STATE).write_text(json.dumps(stored_push))
    sub = subscriber_factory(device.broker.port, [f"{ROOT}/#"])
    issued_before_the_start = now_ms()
    device.start()
    wait_online(sub, device)
    first = json.loads(sub.messages(f"{ROOT}/config/reported")[0].payload)
    in_force = first["version"]
    assert issued_before_the_start <= in_force <= now_ms(), "not the time of this start"
    assert first["config"]["match"]["threshold"] == 0.45, "the stored settings were kept"
    assert push_details(sub)["gallery_push_version"] == in_force
    log = device.log.read_text()
    assert f"holds config version {PROBED}" in log and f"holds gallery push version {FAR}" in log

    sub.publish(f"{ROOT}/config/set", config_set(fleet, issued_before_the_start, {"match.threshold": 0.4}))
    assert "not newer" in answer(sub, issued_before_the_start)["last_error"], "a replay from before the start"
    current = now_ms()
    sub.publish(f"{ROOT}/config/set", config_set(fleet, current, {"match.threshold": 0.4}))
    assert answer(sub, current)["status"] == "applied"
    bundle_json = encode_bundle(bundle_of(device.gallery, embedder_of(manifest)))
    sub.publish(f"{ROOT}/gallery/set", push_message(fleet, bundle_json, current))
    assert wait_until(lambda: push_accepted(sub, current), 30)
    assert device.stop() == 0
    assert Overlay.read(device.state / OVERLAY_FILE).version == current
    assert json.loads((device.state / PUSH_STATE).read_text())["version"] == current


def test_the_push_state_never_disagrees_with_the_gallery_in_use(
    make_device,
    fleet,
    manifest,
    subscriber_factory,
    small_disk,
    tmp_path,
):
    """The state folder on a small disk: full, `gallery-push.json` cannot be written, and the push
    is refused with the old gallery in use (it was replaced first, and reported refused); then
    that name is a folder, so the file cannot be renamed into place after the gallery was
    replaced: the push is accepted and reported so."""
    device = make_device(tls=False)
    device.state.symlink_to(small_disk)
    sub = subscriber_factory(device.broker.port, [f"{ROOT}/#"])
    device.start()
    wait_online(sub, device)
    embedder = embedder_of(manifest)
    old = bundle_of(device.gallery, embedder).version
    before = device.gallery.read_bytes()
    smaller = tmp_path / "smaller.sqlite"
    shutil.copy(device.gallery, smaller)
    with GalleryStore.open(smaller, embedder.model_id, embedder.sha256, scaler=cohort_for(embedder.model_id)) as store:
        store.remove(REMOVED)
        new = store.version
    bundle_json = encode_bundle(bundle_of(smaller, embedder))

    ballast = fill(small_disk)
    first = now_ms()
    sub.publish(f"{ROOT}/gallery/set", push_message(fleet, bundle_json, first))
    assert wait_until(lambda: push_refused(sub, first, PUSH_STATE), 30), push_details(sub)
    assert device.gallery.read_bytes() == before, "refused, yet the new gallery is in the file"
    assert statuses(sub)[-1]["versions"]["gallery_version"] == old
    assert push_details(sub)["gallery_push_version"] == 0

    ballast.unlink()
    (device.state / PUSH_STATE).mkdir()
    second = now_ms()
    sub.publish(f"{ROOT}/gallery/set", push_message(fleet, bundle_json, second))
    assert wait_until(lambda: push_accepted(sub, second), 30), push_details(sub)
    assert statuses(sub)[-1]["versions"]["gallery_version"] == new
    assert bundle_of(device.gallery, embedder).version == new
    assert "cannot be replaced" in device.log.read_text()
    assert device.stop() == 0


def test_the_audit_log_is_rotated_so_a_flood_of_refusals_stays_bounded(tmp_path):
    audit = AuditLog(tmp_path / AUDIT_LOG, max_bytes=4096)
    for version in range(300):
        audit.append("config", "rejected", version=version, reason="bad signature " + "x" * 100)
    current, rotated = tmp_path / AUDIT_LOG, tmp_path / f"{AUDIT_LOG}.1"
    assert current.stat().st_size <= 4096 and rotated.stat().st_size <= 4096
    kept = [json.loads(line)["version"] for path in (rotated, current) for line in path.read_text().splitlines()]
    assert kept == list(range(300 - len(kept), 300)), "not the newest lines, in order"
    assert len(kept) > 4096 // 200
    assert current.stat().st_mode & 0o777 == 0o600 and rotated.stat().st_mode & 0o777 == 0o600
