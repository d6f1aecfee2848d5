"""Galleries over MQTT (`gallery/set`), against a real `edge run` process, a real Mosquitto with
persistence, the real models and a camera on loopback showing people of the LFW slideshow.

A pushed gallery is in force for the next match events; the broker's persistence file holds
ciphertext, never a template; a SIGKILL during a swap leaves the old or the new gallery; ~500
bad messages change nothing, are each refused with their reason, and the loop counts frames
all along.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import test_device_e2e
import test_gallery_live
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from support_broker import free_port
from support_camera import MjpegCamera
from support_cohort import cohort_for
from support_fleet import fleet_broker
from support_wait import wait_until
from test_device_e2e import ENROLLED, unique_events
from test_gallery_live import KEPT, PHOTO_FRAMES, REMOVED, events_of

from edge.central.fleet.bundle import issue_device
from edge.central.fleet.folder import FleetDir
from edge.cli import main
from edge.gallery import Bundle, GalleryStore, encode_bundle
from edge.gallery.content import IdentityRecord, TemplateRecord, canonical_order, content_version
from edge.link import gallery_set
from edge.link.signed import b64, load_private_key, load_public_key, seal, sign, write_public_key

gallery, slideshow, slideshow_jpegs = (
    test_device_e2e.gallery,
    test_device_e2e.slideshow,
    test_device_e2e.slideshow_jpegs,
)
passers_by = test_gallery_live.passers_by
SITE, DEVICE = "test", "cam-1"
ROOT = f"edge/{SITE}/{DEVICE}"


@pytest.fixture
def fleet(tmp_path) -> FleetDir:
    """A fleet made by `edge fleet init`, and this device's keys and certificate as `edge fleet
    provision` issues them (into tmp_path/certs, the bundle's /etc/edge)."""
    assert main(["fleet", "init", str(tmp_path / "fleet")]) == 0
    fleet = FleetDir(tmp_path / "fleet")
    issue_device(fleet, SITE, DEVICE, tmp_path / "certs")
    return fleet


@pytest.fixture
def camera(passers_by):
    camera = MjpegCamera(lambda n: passers_by[n // PHOTO_FRAMES % len(passers_by)], fps=25).start()
    yield camera
    camera.stop()


class Device:
    """`edge run` in its own process, configured as a provisioned device is (TOML, fleet keys)."""

    def __init__(
        self, tmp_path: Path, broker, camera: MjpegCamera, gallery_path: Path, tls: bool, device_id: str = DEVICE
    ) -> None:
        """Its files live in `tmp_path` (certs/ as `issue_device` writes them, state/, the log and the config)."""
        certs = tmp_path / "certs"
        if tls:  # the fleet's TLS listener, with this device's certificate
            mqtt = f'url = "mqtts://localhost:{broker.port}"\nca_file = "{certs / "ca.crt"}"\n'
            mqtt += f'cert_file = "{certs / "device.crt"}"\nkey_file = "{certs / "device.key"}"'
        else:
            mqtt = f'url = "{broker.url}"'
        self.gallery = gallery_path
        self.state = tmp_path / "state"
        self.log = tmp_path / "device.log"
        self.config = tmp_path / "edge.toml"
        self.config.write_text(
            f"""
[device]
device_id = "{device_id}"
site = "{SITE}"
state_dir = "{self.state}"
[camera]
source = "{camera.url}"
[models]
detector = "blazeface_short_range"
[match]
gallery = "{gallery_path}"
gallery_poll_s = 0.5
[mqtt]
{mqtt}
connect_timeout_s = 15
[stats]
window_s = 1
[fleet]
signing_public_key = "{certs / "fleet-signing.pub"}"
device_key = "{certs / "box.key"}"
"""
        )
        self.broker = broker
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Device:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "edge.cli", "run", "--config", str(self.config)], stdout=log, stderr=log
            )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def audit_count(self) -> int:
        path = self.state / "audit.jsonl"
        return path.read_bytes().count(b"\n") if path.exists() else 0

    def audit(self) -> list[dict]:
        path = self.state / "audit.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [e for e in map(json.loads, lines) if e["kind"] == "gallery"]


@pytest.fixture
def central_port() -> int:
    """The fleet broker's listener for the central tools (the devices' listener binds client ids to certificates)."""
    return free_port()


@pytest.fixture
def make_device(tmp_path, broker_factory, camera, gallery, fleet, central_port):
    """`make(tls)`: a device (not started) on a copy of the five-person gallery, with a broker
    that persists: plain, or the fleet's (`edge fleet broker-config`: TLS and the ACL)."""
    devices = []

    def make(tls: bool) -> Device:
        if tls:
            out, port = tmp_path / "broker", free_port()
            broker = fleet_broker(broker_factory, fleet.root, out, port, persistence=True, central_port=central_port)
        else:
            broker = broker_factory(persistence=True)
        path = tmp_path / "gallery" / "gallery.sqlite"
        path.parent.mkdir()
        shutil.copy(gallery, path)
        devices.append(Device(tmp_path, broker, camera, path, tls))
        return devices[-1]

    yield make
    for device in devices:
        if device.process is not None:
            device.stop()


@pytest.fixture
def device(make_device) -> Device:
    return make_device(tls=False)


def statuses(sub) -> list[dict]:
    return [json.loads(m.payload) for m in sub.messages(f"{ROOT}/status")]


def stats_windows(sub) -> dict[str, dict]:
    return {w["window_id"]: w for w in (json.loads(m.payload) for m in sub.messages(f"{ROOT}/stats"))}


def embedder_of(manifest):
    return manifest.get(manifest.default_embedder, "embedder")


def bundle_of(path: Path, embedder) -> Bundle:
    with GalleryStore.open(path, embedder.model_id, embedder.sha256, scaler=cohort_for(embedder.model_id)) as store:
        return store.bundle()


def device_box(fleet: FleetDir) -> X25519PublicKey:
    return load_public_key(fleet.device_dir(SITE, DEVICE) / "box.pub", X25519PublicKey, "box.pub")


def fleet_key(fleet: FleetDir) -> Ed25519PrivateKey:
    return load_private_key(fleet.signing_key, Ed25519PrivateKey, "fleet key")


def push_message(fleet: FleetDir, bundle_json: bytes, version: int) -> bytes:
    """A gallery/set message for this device, as `edge fleet gallery push` makes it."""
    model_id = json.loads(bundle_json)["embedder"]["model_id"]
    return gallery_set.build(
        bundle_json,
        version=version,
        device=f"{SITE}/{DEVICE}",
        embedder_model_id=model_id,
        recipient=device_box(fleet),
        signing_key=fleet_key(fleet),
    )


def wait_online(sub, device: Device, timeout: float = 90) -> None:
    """Until the device counts frames (so it is subscribed to gallery/set: that comes first)."""
    assert wait_until(lambda: any(w["frames"] for w in stats_windows(sub).values()), timeout), device.log.read_text()[
        -3000:
    ]


def test_a_pushed_gallery_is_in_force_for_the_next_events_and_the_broker_keeps_only_ciphertext(
    make_device, fleet, central_port, manifest, subscriber_factory, tmp_path, capsys
):
    """Over the fleet's broker (TLS, the ACL): the centre pushes with `edge fleet gallery push`."""
    device = make_device(tls=True)
    broker = device.broker
    central = (str(fleet.ca_cert), str(fleet.central_cert), str(fleet.central_key))
    # A persistent session that is away: the broker keeps the push for it, in its persistence file.
    subscriber_factory(central_port, [f"{ROOT}/gallery/set"], client_id="away", persistent=True, tls=central).stop()
    sub = subscriber_factory(central_port, ["edge/#"], tls=central)
    device.start()
    assert wait_until(lambda: events_of(sub, REMOVED), timeout=90), device.log.read_text()[-3000:]
    first = statuses(sub)[-1]["versions"]["gallery_version"]

    pushed = tmp_path / "pushed.sqlite"  # the centre's gallery: REMOVED withdrew
    shutil.copy(device.gallery, pushed)
    embedder = embedder_of(manifest)
    with GalleryStore.open(pushed, embedder.model_id, embedder.sha256, scaler=cohort_for(embedder.model_id)) as store:
        store.remove(REMOVED)
        second = store.version
    capsys.readouterr()
    args = ["fleet", "gallery", "push", f"{SITE}/{DEVICE}", "--gallery", str(pushed), "--fleet", str(fleet.root)]
    assert main([*args, "--broker", f"mqtts://localhost:{central_port}", "--wait", "30"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["gallery_version"] == second and report["device_gallery_version"] == second
    assert report["gallery_identities"] == len(ENROLLED) - 1
    version = report["push_version"]
    assert (fleet.device_dir(SITE, DEVICE) / "gallery.version").read_text().strip() == str(version)
    status = statuses(sub)[-1]
    assert status["versions"]["gallery_version"] == second
    assert status["details"]["gallery_push_version"] == version and status["details"]["gallery_push_error"] is None
    for basis in ("mixed", "bound"):  # both figures, as the device states them
        key = f"false_alerts_per_1000_{basis}"
        assert report[key] == status["details"][key] is not None
    assert wait_until(lambda: len(events_of(sub, KEPT, second)) >= 2, timeout=30)
    assert device.stop() == 0

    events = unique_events(sub)
    versions = [e["gallery_version"] for e in events]
    assert versions == sorted(versions, key=[first, second].index), "an event of the old gallery came later"
    assert not events_of(sub, REMOVED, second)
    assert bundle_of(device.gallery, embedder).version == second
    assert json.loads((device.state / "gallery-push.json").read_text())["version"] == version
    assert [(e["outcome"], e["version"]) for e in device.audit()] == [("accepted", version)]
    (push,) = [m for m in sub.messages(f"{ROOT}/gallery/set")]
    assert not push.retain

    broker.stop()  # saves the persistence file: the push waits in it for the away session
    stored = (broker.workdir / "mosquitto.db").read_bytes()
    assert json.loads(push.payload)["sealed"]["ciphertext"].encode() in stored, "the push is not in the file"
    templates = [t.embedding for r in bundle_of(pushed, embedder).identities for t in r.templates]
    assert templates
    for template in templates:
        assert template not in stored and base64.b64encode(template) not in stored
        assert template[:64] not in stored and base64.b64encode(template)[:64] not in stored


def big_bundle(embedder, people: int = 1500, per_person: int = 4) -> Bundle:
    """A large synthetic gallery (about 6 MB of bundle), so that building it takes a while."""
    rng = np.random.default_rng(11)
    now = "2026-01-01T00:00:00.000+00:00"
    identities = []
    for i in range(people):
        vectors = rng.normal(size=(per_person, 128)).astype("<f4")
        templates = tuple(TemplateRecord(v.tobytes(), 0.9, f"p{i}_{k}.jpg", now) for k, v in enumerate(vectors))
        identities.append(IdentityRecord(f"p{i:05d}", f"Person {i}", now, templates))
    records = tuple(canonical_order(identities))
    version = content_version(embedder.model_id, embedder.sha256, records)
    return Bundle(embedder.model_id, embedder.sha256, version, records)


def incoming(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if name.endswith(".incoming") or ".incoming-" in name]


def test_sigkill_during_a_gallery_swap_leaves_the_old_or_the_new_gallery(device, fleet, manifest, subscriber_factory):
    embedder = embedder_of(manifest)
    old = bundle_of(device.gallery, embedder).version
    new = big_bundle(embedder)
    bundle_json = encode_bundle(new)
    caught_mid_build = 0
    # When each kill lands: the moment the new file appears beside the old one (twice), a while
    # after the push was sent, and once the device reported the new gallery in use.
    for trial, when in enumerate(["building", "building", 0.3, 0.6, "swapped"]):
        sub = subscriber_factory(device.broker.port, [f"{ROOT}/#"])
        device.start()
        wait_online(sub, device)
        sub.publish(f"{ROOT}/gallery/set", push_message(fleet, bundle_json, 1000 + trial))
        if when == "building":
            deadline = time.monotonic() + 30
            while not incoming(device.gallery.parent) and time.monotonic() < deadline:
                pass
            caught_mid_build += bool(incoming(device.gallery.parent))
        elif when == "swapped":
            assert wait_until(lambda s=sub: statuses(s)[-1]["versions"]["gallery_version"] == new.version, 60)
        else:
            time.sleep(when)
        device.kill()
        with GalleryStore.open(
            device.gallery, embedder.model_id, embedder.sha256, scaler=cohort_for(embedder.model_id)
        ) as store:
            assert store.version in (old, new.version), f"trial {trial}: a gallery that was never pushed"
            assert when != "swapped" or store.version == new.version
        with sqlite3.connect(f"file:{device.gallery}?mode=ro", uri=True) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        sub.stop()
    assert caught_mid_build, "no kill landed while the new gallery was being built"

    sub = subscriber_factory(device.broker.port, [f"{ROOT}/#"])
    device.start()
    wait_online(sub, device)
    in_file = bundle_of(device.gallery, embedder).version
    assert statuses(sub)[-1]["versions"]["gallery_version"] == in_file
    assert incoming(device.gallery.parent) == [], "a half-built gallery was left lying about"
    assert device.stop() == 0


def bad_messages(fleet: FleetDir, bundle: Bundle, baseline: bytes, accepted: int) -> list[tuple[str, bytes, str]]:
    """About 500 (kind, payload, regex the refusal's reason must match). Messages that are
    wrong in one way only carry a fresh version, so no other check could refuse them first."""
    rng = np.random.default_rng(3)
    key, box = fleet_key(fleet), device_box(fleet)
    other_key, other_box = Ed25519PrivateKey.generate(), X25519PrivateKey.generate().public_key()
    bundle_json = encode_bundle(bundle)
    fresh = iter(range(10_000, 20_000))

    def good(**change) -> dict:
        body = {
            "version": next(fresh),
            "issued_at": "2026-01-01T00:00:00Z",
            "device": f"{SITE}/{DEVICE}",
            "embedder_model_id": bundle.model_id,
            "sealed": seal(bundle_json, box),
        }
        return {**body, **change}

    def signed(body: dict, with_key=key) -> bytes:
        return json.dumps(sign(body, with_key)).encode()

    def truncated(sealed: dict, field: str, keep: int) -> dict:
        raw = base64.b64decode(sealed[field])
        return {**sealed, field: b64(raw[:keep])}

    cases: list[tuple[str, bytes, str]] = []
    text = signed(good())
    for _ in range(30):
        junk = rng.integers(0, 256, size=int(rng.integers(1, 300)), dtype=np.uint8).tobytes()
        cases.append(("malformed", junk, "not JSON|not a JSON object"))
        cases.append(("malformed", text[: int(rng.integers(0, len(text) - 1))], "not JSON"))
    for value in (b"[]", b"1", b'"gallery"', b"null", b"true", b"[" * 100_000):
        cases.append(("malformed", value, "not a JSON object|not JSON"))

    wrong_types = {
        "version": ["5", 5.5, True, None, -1, 0, 2**64, [5], {"v": 5}],
        "issued_at": [5, "yesterday", "2026-01-01T00:00:00", None, []],
        "device": [7, None, "nodevice", "a/b/c", ["test", "cam-1"]],
        "embedder_model_id": [5, "", None, {}],
        "sealed": ["x", [1], {"epk": 5}, None, 3],
    }
    for _ in range(3):
        for field, values in wrong_types.items():
            for value in values:
                cases.append(("wrong type", signed(good(**{field: value})), "malformed"))
        for field in ("version", "issued_at", "device", "embedder_model_id", "sealed"):
            body = good()
            del body[field]
            cases.append(("missing field", signed(body), "malformed"))
        cases.append(("extra field", signed(good(extra=1)), "malformed"))
    for n in range(10):
        body = good()
        cases.append(("unsigned", json.dumps(body).encode(), "unsigned"))
        cases.append(("unsigned", json.dumps({**body, "signature": ""}).encode(), "bad signature"))
        cases.append(("unsigned", json.dumps({**body, "signature": "not base64!"}).encode(), "signature"))
        cases.append(("unsigned", json.dumps({**body, "signature": n}).encode(), "signature"))
    for _ in range(40):
        cases.append(("wrong key", signed(good(), other_key), "bad signature"))
    for n in range(60):
        message = json.loads(signed(good()))
        field = ["version", "device", "embedder_model_id", "issued_at", "sealed", "extra"][n % 6]
        if field == "version":
            message["version"] += 1
        elif field == "device":
            message["device"] = f"{SITE}/cam-2"
        elif field == "embedder_model_id":
            message["embedder_model_id"] = "dlib_resnet_v1_fp16"
        elif field == "issued_at":
            message["issued_at"] = "2030-01-01T00:00:00Z"
        elif field == "sealed":
            raw = bytearray(base64.b64decode(message["sealed"]["ciphertext"]))
            raw[int(rng.integers(0, len(raw)))] ^= 1
            message["sealed"]["ciphertext"] = b64(bytes(raw))
        else:
            message["extra"] = True
        cases.append(("tampered", json.dumps(message).encode(), "bad signature"))
    for _ in range(10):  # the version in force on another message: a replayed version, not a copy
        cases.append(("replayed", signed(good(version=accepted)), "not newer"))
    for _ in range(50):
        cases.append(("stale", signed(good(version=int(rng.integers(1, accepted + 1)))), "not newer"))
    for n in range(3):
        cases.append(("oversized", b" " * (gallery_set.MAX_BYTES + 1 + n), "over the limit"))
    cases.append(("oversized", text + b" " * gallery_set.MAX_BYTES, "over the limit"))
    other_sha = "ab" * 32  # the same model id, another file: its descriptors mean something else
    foreign = Bundle(
        bundle.model_id, other_sha, content_version(bundle.model_id, other_sha, bundle.identities), bundle.identities
    )
    for _ in range(20):
        cases.append(("wrong embedder", signed(good(embedder_model_id="dlib_resnet_v1_fp16")), "embedder"))
        cases.append(("wrong embedder", signed(good(sealed=seal(encode_bundle(foreign), box))), other_sha))
    for n in range(20):
        cases.append(("wrong device", signed(good(device=f"{SITE}/cam-{n + 2}")), "for device"))
        cases.append(("wrong device", signed(good(device=f"other/{DEVICE}")), "for device"))
    for n in range(40):
        sealed = seal(bundle_json, box)
        field, keep = [
            ("ciphertext", int(rng.integers(0, 16))),
            ("nonce", int(rng.integers(0, 12))),
            ("epk", int(rng.integers(0, 32))),
            ("ciphertext", int(rng.integers(16, 400))),
        ][n % 4]
        cases.append(
            ("truncated ciphertext", signed(good(sealed=truncated(sealed, field, keep))), "truncated|does not open")
        )
    for _ in range(40):
        cases.append(("sealed to another device", signed(good(sealed=seal(bundle_json, other_box))), "does not open"))
    edited = bundle_json.replace(bundle.identities[0].name.encode(), b"Mallory", 1)
    for plaintext, why in ((b"not a bundle", "not readable JSON"), (b"{}", "invalid"), (edited, "does not match")):
        for _ in range(5):
            cases.append(("sealed non-bundle", signed(good(sealed=seal(plaintext, box))), why))
    return cases


def test_bad_gallery_pushes_change_nothing_and_each_is_refused_with_its_reason_while_frames_flow(
    device, fleet, manifest, subscriber_factory
):
    embedder = embedder_of(manifest)
    sub = subscriber_factory(device.broker.port, [f"{ROOT}/#"])
    device.start()
    wait_online(sub, device)
    bundle = bundle_of(device.gallery, embedder)
    baseline = push_message(fleet, encode_bundle(bundle), 100)  # the gallery it has, as push 100
    sub.publish(f"{ROOT}/gallery/set", baseline)
    assert wait_until(lambda: device.audit_count() == 1, 30)
    gallery_bytes, push_state = device.gallery.read_bytes(), (device.state / "gallery-push.json").read_bytes()
    cases = bad_messages(fleet, bundle, baseline, 100)
    assert len(cases) >= 500

    started = datetime.now(timezone.utc)
    for i, (kind, payload, _) in enumerate(cases):
        sub.publish(f"{ROOT}/gallery/set", payload)
        assert wait_until(lambda n=i + 2: device.audit_count() == n, 30), f"no answer to {kind} message {i}"
    ended = datetime.now(timezone.utc)

    assert device.alive(), device.log.read_text()[-3000:]
    accepted, *refused = device.audit()
    assert (accepted["outcome"], accepted["version"]) == ("accepted", 100)
    for (kind, _, why), entry in zip(cases, refused, strict=True):
        assert entry["outcome"] == "refused" and re.search(why, entry["reason"]), (kind, entry)
    assert device.gallery.read_bytes() == gallery_bytes
    assert (device.state / "gallery-push.json").read_bytes() == push_state
    assert incoming(device.gallery.parent) == []
    assert wait_until(lambda: re.search(cases[-1][2], statuses(sub)[-1]["details"]["gallery_push_error"] or ""))
    status = statuses(sub)[-1]
    assert status["versions"]["gallery_version"] == bundle.version and status["details"]["gallery_push_version"] == 100
    assert "Traceback" not in device.log.read_text()

    assert wait_until(lambda: any(parse_time(w["window_start"]) > ended for w in stats_windows(sub).values()))
    during = [
        w
        for w in stats_windows(sub).values()
        if parse_time(w["window_start"]) >= started and parse_time(w["window_end"]) <= ended
    ]
    assert during and all(w["frames"] > 0 for w in during), "the loop stopped counting frames"

    sub.publish(f"{ROOT}/gallery/set", baseline)  # an identical copy of the push in force (a retained delivery)
    copy = "gallery push 100 is the one in force, received again"
    assert wait_until(lambda: copy in device.log.read_text(), 30)
    assert device.audit_count() == len(cases) + 1, "an identical copy was handled as a push"
    sub.publish(f"{ROOT}/gallery/set", push_message(fleet, encode_bundle(bundle), 20_000))
    assert wait_until(lambda: device.audit_count() == len(cases) + 2, 30)
    assert device.audit()[-1]["outcome"] == "accepted"
    assert device.stop() == 0


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_the_push_command_says_why_a_device_refused_and_what_the_fleet_lacks(
    device, fleet, subscriber_factory, tmp_path, capsys
):
    sub = subscriber_factory(device.broker.port, [f"{ROOT}/#"])
    device.start()
    wait_online(sub, device)
    before = device.gallery.read_bytes()
    # The fleet folder holds a box key the device does not have (say, it was re-provisioned).
    write_public_key(fleet.device_dir(SITE, DEVICE) / "box.pub", X25519PrivateKey.generate().public_key())
    push = ["fleet", "gallery", "push", "--gallery", str(device.gallery), "--fleet", str(fleet.root)]
    capsys.readouterr()
    assert main([*push, f"{SITE}/{DEVICE}", "--broker", device.broker.url, "--wait", "30"]) == 1
    err = capsys.readouterr().err
    assert "device refused the gallery" in err and "does not open" in err and "Traceback" not in err
    assert device.gallery.read_bytes() == before and device.audit()[-1]["outcome"] == "refused"
    assert main([*push, f"{SITE}/cam-9", "--broker", device.broker.url]) == 1
    assert "test/cam-9 was not provisioned" in capsys.readouterr().err
    push[push.index("--fleet") + 1] = str(tmp_path / "nowhere")
    assert main([*push, f"{SITE}/{DEVICE}", "--broker", device.broker.url]) == 1
    assert "edge fleet init" in capsys.readouterr().err
