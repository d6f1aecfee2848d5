"""A running device sees gallery changes: the watcher's rules on real gallery files, then
`run_device` end to end while `edge gallery remove` and `edge enroll` change its gallery."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from edge.config import MatchConfig
from edge.device.gallery_watch import GalleryWatcher
from edge.gallery import GalleryStore, Matcher
from edge.link import Versions
from edge.vision import ModelEntry
from edge.vision.operating_point import OperatingPoint

POINT = OperatingPoint(0.5, 0.001, None, "overall", "test")  # 2 people: ~2.0 false alerts per 1,000; 3: ~3.0


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
    with GalleryStore.create(scratch, embedder.model_id, embedder.sha256) as store:
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
    return GalleryWatcher(match, POINT, embedder, matcher, swaps.append, link, versions), swaps, link


def test_a_changed_gallery_is_swapped_in_and_reported_and_an_unchanged_file_is_not_read(
    tmp_path, embedder, monkeypatch
):
    path = tmp_path / "gallery.sqlite"
    first = make_gallery(path, embedder, ["alice", "bob"])
    watcher, swaps, link = watcher_for(path, embedder, first)
    watcher.check()
    assert swaps == [] and link.updates == []  # the gallery in use
    with GalleryStore.open(path, embedder.model_id, embedder.sha256) as store:
        store.remove("bob")
        removed = store.version
    settle(path)
    watcher.check()
    assert [m.identity_ids for m in swaps] == [("alice",)] and swaps[0].version == removed
    assert link.last == (
        removed,
        {"gallery_identities": 1, "expected_false_alerts_per_1000_scans": pytest.approx(1.0), "gallery_error": None},
    )
    opened = []
    monkeypatch.setattr(GalleryStore, "open", lambda *a: opened.append(a))
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
    with GalleryStore.create(scratch, "dlib_resnet_v1_fp16", "cd" * 32) as store:
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
    grown = make_gallery(path, embedder, ["alice", "bob", "carol"])
    watcher.check()
    assert swaps == []
    assert "2.5" in link.last[1]["gallery_error"] and link.last[1]["gallery_identities"] == 2
    swapped = make_gallery(path, embedder, ["alice", "carol", "dave"])  # bob withdrew; two joined
    with caplog.at_level("WARNING", logger="edge"):
        watcher.check()
    assert [m.version for m in swaps] == [swapped.version], "a removal was refused"
    assert "removes people" in caplog.text
    assert link.last == (
        swapped.version,
        {
            "gallery_identities": 3,
            "expected_false_alerts_per_1000_scans": pytest.approx(3.0, rel=0.01),
            "gallery_error": None,
        },
    )
    assert grown.version != swapped.version
