"""A running device sees gallery changes: the watcher's rules on real gallery files, then
`run_device` end to end while `edge gallery remove` and `edge enroll` change its gallery."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import test_device_e2e
from support_camera import MjpegCamera
from support_cohort import cohort_for
from support_wait import wait_until
from test_device_e2e import ENROLLED, unique_events

from edge.cli import main
from edge.config import MatchConfig, load_settings
from edge.device.app import run_device
from edge.device.gallery_watch import GalleryWatcher
from edge.gallery import GalleryStore, Matcher
from edge.link import Versions
from edge.vision import ModelEntry
from edge.vision.operating_point import MeasuredRate, OperatingPoint

# The end-to-end test's slideshow, its JPEGs and the gallery enrolled from other photos of
# five of its people: the fixtures of test_device_e2e, shared.
gallery, slideshow, slideshow_jpegs = (
    test_device_e2e.gallery,
    test_device_e2e.slideshow,
    test_device_e2e.slideshow_jpegs,
)
# 2 people: ~2.0 false alerts per 1,000 in a mixed crowd (20 at most, a crowd of the worst group); 3: ~3.0
POINT = OperatingPoint(
    0.5, 0.001, None, "overall", "test", mixed=MeasuredRate(0.001, None), bound=MeasuredRate(0.01, None)
)


def reported(identities: int, mixed: float, error: str | None = None) -> dict:
    """The gallery details a watcher reports: identities, both expectations (no intervals here), the error."""
    return {
        "gallery_identities": identities,
        "false_alerts_per_1000_mixed": pytest.approx(mixed, rel=0.01),
        "false_alerts_per_1000_mixed_lo": None,
        "false_alerts_per_1000_mixed_hi": None,
        "false_alerts_per_1000_bound": pytest.approx(10 * mixed, rel=0.01),
        "false_alerts_per_1000_bound_lo": None,
        "false_alerts_per_1000_bound_hi": None,
        "gallery_error": error,
    }


class StatusRecorder:
    """Stands in for the MQTT link: keeps every status change."""

    def __init__(self) -> None:
        self.updates: list[tuple[Versions | None, dict]] = []

    def update_status(self, *, versions=None, details=None) -> None:
        self.updates.append((versions, details))

    @property
    def last(self) -> tuple[str | None, dict]:
        versions, details = self.updates[-1]
        return versions.gallery_version if versions else None, details


@pytest.fixture
def embedder(manifest) -> ModelEntry:
    return manifest.get(manifest.default_embedder, "embedder")


def person(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(1, 128)).astype(np.float32)
    return v / np.linalg.norm(v) * 0.5


def make_gallery(path: Path, embedder: ModelEntry, people: list[str]) -> Matcher:
    """A gallery of `people` (each one template) at `path`, written elsewhere and moved in
    as a whole, its mtime in the past (a settled file); returns its matcher."""
    scratch = path.with_suffix(".new")
    with GalleryStore.create(
        scratch, embedder.model_id, embedder.sha256, scaler=cohort_for(embedder.model_id)
    ) as store:
        for i, name in enumerate(people):
            store.add(name, name, person(i))
        matcher = store.matcher()
    os.replace(scratch, path)
    settle(path)
    return matcher


def settle(path: Path) -> None:
    past = time.time() - 60
    os.utime(path, (past, past))


def watcher_for(path: Path, embedder: ModelEntry, matcher: Matcher, limit: float | None = None):
    swaps: list[Matcher] = []
    link = StatusRecorder()
    versions = Versions(
        software="0", detector_model_id="d", embedder_model_id=embedder.model_id, embedder_sha256=embedder.sha256
    )
    match = MatchConfig(gallery=path, max_false_alerts_per_1000_scans=limit)
    scaler = cohort_for(embedder.model_id)
    return GalleryWatcher(match, POINT, embedder, matcher, swaps.append, link, versions, scaler), swaps, link


def test_a_changed_gallery_is_swapped_in_and_reported_and_an_unchanged_file_is_not_read(
    tmp_path, embedder, monkeypatch
):
    path = tmp_path / "gallery.sqlite"
    first = make_gallery(path, embedder, ["alice", "bob"])
    watcher, swaps, link = watcher_for(path, embedder, first)
    watcher.check()
    assert swaps == [] and link.updates == []  # the gallery in use
    with GalleryStore.open(path, embedder.model_id, embedder.sha256, scaler=cohort_for(embedder.model_id)) as store:
        store.remove("bob")
        removed = store.version
    settle(path)
    watcher.check()
    assert [m.identity_ids for m in swaps] == [("alice",)] and swaps[0].version == removed
    assert link.last == (removed, reported(1, 1.0))
    opened = []
    monkeypatch.setattr(GalleryStore, "open", lambda *a, **k: opened.append(a))
    watcher.check()
    assert opened == [], "an unchanged file was opened"
    with sqlite3.connect(path, timeout=0) as db:  # nothing of the watcher holds the file
        db.execute("BEGIN EXCLUSIVE")


def test_a_corrupt_or_foreign_gallery_keeps_the_last_good_one_and_says_why(tmp_path, embedder, caplog):
    path = tmp_path / "gallery.sqlite"
    good = make_gallery(path, embedder, ["alice", "bob"])
    watcher, swaps, link = watcher_for(path, embedder, good)
    path.write_bytes(b"this is not a gallery" * 100)
    settle(path)
    with caplog.at_level("WARNING", logger="edge"):
        watcher.check()
        watcher.check()
    assert swaps == []
    version, details = link.last
    assert version == good.version and details["gallery_identities"] == 2
    assert "gallery.sqlite" in details["gallery_error"] and len(details["gallery_error"]) <= 200
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and good.version in warnings[0].getMessage()
    scratch = tmp_path / "other.sqlite"
    with GalleryStore.create(scratch, "dlib_resnet_v1_fp16", "cd" * 32, scaler=cohort_for(embedder.model_id)) as store:
        store.add("carol", "carol", person(7))
    os.replace(scratch, path)
    watcher.check()
    assert swaps == [] and "dlib_resnet_v1_fp16" in link.last[1]["gallery_error"]
    fixed = make_gallery(path, embedder, ["alice"])
    watcher.check()
    assert [m.version for m in swaps] == [fixed.version]
    assert link.last[1]["gallery_error"] is None


def test_additions_over_the_false_alert_limit_are_refused_removals_never(tmp_path, embedder, caplog):
    path = tmp_path / "gallery.sqlite"
    watcher, swaps, link = watcher_for(path, embedder, make_gallery(path, embedder, ["alice", "bob"]), limit=2.5)
    make_gallery(path, embedder, ["alice", "bob", "carol"])
    watcher.check()
    assert swaps == []
    assert "2.5" in link.last[1]["gallery_error"] and link.last[1]["gallery_identities"] == 2
    swapped = make_gallery(path, embedder, ["alice", "carol", "dave"])  # bob withdrew; two joined
    with caplog.at_level("WARNING", logger="edge"):
        watcher.check()
    assert [m.version for m in swaps] == [swapped.version], "a removal was refused"
    assert "removes people" in caplog.text
    assert link.last == (swapped.version, reported(3, 3.0))


def test_a_remote_operating_point_change_reaches_the_watcher(tmp_path, embedder):
    """After `config/set` moves the threshold, the status and the false-alert limit use its FMR."""
    path = tmp_path / "gallery.sqlite"
    watcher, swaps, link = watcher_for(path, embedder, make_gallery(path, embedder, ["alice", "bob"]))
    stricter = OperatingPoint(0.4, 0.0001, None, "overall", "remote", mixed=MeasuredRate(0.0001, None))
    watcher.use_operating_point(MatchConfig(gallery=path, max_false_alerts_per_1000_scans=0.25), stricter)
    assert link.last[1]["false_alerts_per_1000_mixed"] == pytest.approx(0.2, rel=0.01)
    make_gallery(path, embedder, ["alice", "bob", "carol"])  # 0.3 expected: over the new limit
    watcher.check()
    assert swaps == [] and "0.25" in link.last[1]["gallery_error"]


def test_a_second_change_within_the_same_mtime_tick_is_not_missed(tmp_path, embedder):
    path = tmp_path / "gallery.sqlite"
    watcher, swaps, _ = watcher_for(path, embedder, make_gallery(path, embedder, ["alice", "bob"]))
    with GalleryStore.open(path, embedder.model_id, embedder.sha256, scaler=cohort_for(embedder.model_id)) as store:
        store.remove("bob")
        stat = path.stat()
        watcher.check()
        store.remove("alice")  # the file's size stays; its mtime is set back to the first change's
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    watcher.check()
    assert [m.identity_ids for m in swaps] == [("alice",), ()]


REMOVED, KEPT, JOINER = "george_w_bush", "angela_bassett", "juan_pablo_montoya"
PHOTO_FRAMES = 10  # camera frames each photo is shown for: 0.4 s at 25 fps


@pytest.fixture
def passers_by(slideshow, slideshow_jpegs) -> list[bytes]:
    """Both slideshow photos of KEPT, REMOVED and JOINER as JPEGs, in turn, as people walking past."""
    _, rows = slideshow
    photos = {r["identity"]: [] for r in rows}
    for r in rows:
        photos[r["identity"]].append(slideshow_jpegs[(int(r["start_frame"]) + 12) // 3])  # mid-photo
    return [photos[who][i] for i in range(2) for who in (KEPT, REMOVED, JOINER)]


def events_of(sub, identity: str, version: str | None = None) -> list[dict]:
    return [
        e
        for e in unique_events(sub)
        if e["identity_id"] == identity and (version is None or e["gallery_version"] == version)
    ]


def last_status(sub) -> dict:
    return json.loads(sub.messages("edge/test/cam-1/status")[-1].payload)


def cli_json(args: list[str], capsys) -> dict:
    capsys.readouterr()
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)


def test_a_running_device_uses_gallery_changes_from_the_next_frame(
    broker, subscriber_factory, gallery, passers_by, data_dir, slideshow, tmp_path, capsys
):
    """While `run_device` watches a camera: `edge gallery remove` stops that person's alerts,
    `edge enroll` makes a new person match, a corrupt file changes nothing; the status and
    every event say which gallery version was in use."""
    path = tmp_path / "gallery.sqlite"
    shutil.copy(gallery, path)
    camera = MjpegCamera(lambda n: passers_by[n // PHOTO_FRAMES % len(passers_by)], fps=25).start()
    sub = subscriber_factory(broker.port, ["edge/#"])
    settings = load_settings(
        device={"device_id": "cam-1", "site": "test", "state_dir": tmp_path / "state"},
        camera={"source": camera.url},
        models={"detector": "blazeface_short_range"},
        match={"gallery": path, "gallery_poll_s": 0.5},
        mqtt={"url": broker.url, "connect_timeout_s": 15},
    )
    stop, result = threading.Event(), {}
    runner = threading.Thread(target=lambda: result.update(summary=run_device(settings, stop)))
    runner.start()
    try:
        assert wait_until(lambda: events_of(sub, REMOVED), timeout=60)
        first = last_status(sub)["versions"]["gallery_version"]
        assert events_of(sub, REMOVED, first) and not events_of(sub, JOINER)

        removal = cli_json(["gallery", "remove", "--gallery", str(path), "--id", REMOVED], capsys)
        second = removal["version"]
        assert second in removal["running_device"]
        assert wait_until(lambda: last_status(sub)["versions"]["gallery_version"] == second)
        assert last_status(sub)["details"]["gallery_identities"] == len(ENROLLED) - 1
        assert wait_until(lambda: len(events_of(sub, KEPT, second)) >= 3, timeout=30)  # a full turn and more

        _, rows = slideshow
        shown = {r["source_path"] for r in rows}
        photos = [
            str(data_dir / r["path"])
            for r in csv.DictReader(open(data_dir / "identities.csv"))
            if r["identity"] == JOINER and r["path"] not in shown
        ]
        enrolment = cli_json(["enroll", "--gallery", str(path), "--name", JOINER, "--id", JOINER, *photos], capsys)
        third = enrolment["gallery_version"]
        assert third in enrolment["running_device"]
        assert wait_until(lambda: events_of(sub, JOINER, third), timeout=30)
        assert last_status(sub)["details"]["gallery_identities"] == len(ENROLLED)

        path.write_bytes(b"this is not a gallery" * 100)
        assert wait_until(lambda: last_status(sub)["details"].get("gallery_error"))
        kept = len(events_of(sub, KEPT, third))
        assert wait_until(lambda: len(events_of(sub, KEPT, third)) >= kept + 2, timeout=30)
    finally:
        stop.set()
        runner.join(timeout=60)
        camera.stop()
    assert not runner.is_alive() and result["summary"].outbox_pending == 0
    events = unique_events(sub)
    versions = [e["gallery_version"] for e in events]
    assert versions == sorted(versions, key=[first, second, third].index), "an event of an older gallery came later"
    assert not events_of(sub, REMOVED, second) and not events_of(sub, REMOVED, third)
    assert {e["gallery_version"] for e in events_of(sub, JOINER)} == {third}
    assert last_status(sub)["versions"]["gallery_version"] == third
