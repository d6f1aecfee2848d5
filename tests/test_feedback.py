"""Negative feedback: template ids in match events, tightened and quarantined templates, and the
proposal, application and reversal of a change after an alert adjudicated false."""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import uuid
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from edge.central.trial.store import TrialStore
from edge.gallery import Bundle, GalleryBundleError, GalleryStore, InvalidInput, Matcher, encode_bundle, parse_bundle
from edge.gallery.content import IdentityRecord, TemplateRecord, content_version, template_id
from edge.link.payloads import MatchEvent
from tests.test_gallery import MODEL, SCALER

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(128).astype(np.float32)
    return v / np.linalg.norm(v)


def test_a_template_id_is_16_hex_digits_stable_and_of_the_bytes_only() -> None:
    a, b = unit(1), unit(2)
    assert template_id(a.tobytes()) == template_id(a.copy().tobytes())
    assert template_id(a.tobytes()) != template_id(b.tobytes())
    assert len(template_id(a.tobytes())) == 16 and int(template_id(a.tobytes()), 16) >= 0
    # not a plain hash of the descriptor: a domain prefix keeps it apart from any other sha256
    assert template_id(a.tobytes()) != hashlib.sha256(a.tobytes()).hexdigest()[:16]


def test_the_matcher_names_the_template_that_matched() -> None:
    a1, a2, b = unit(1), unit(2), unit(3)
    matcher = Matcher(np.stack([a1, a2, b]), ["a", "a", "b"], "v1")
    assert matcher.template_ids == tuple(template_id(t.tobytes()) for t in (a1, a2, b))
    match = matcher.match(a2 + 0.001, 0.5)
    assert match is not None and match.identity_id == "a" and match.template_id == template_id(a2.tobytes())


def event(template: str | None, seq: int = 1) -> MatchEvent:
    return MatchEvent(
        event_id=uuid.UUID(bytes=hashlib.md5(f"fb-{seq}".encode()).digest(), version=4).hex,
        ts=T0,
        device_id="cam1",
        site="north",
        track_id=seq,
        identity_id="id-7",
        score=0.31,
        threshold=0.4,
        template_threshold=0.42,
        template_id=template,
        metric="euclidean",
        model_id="m",
        gallery_version="v1",
        window_id="cam1.boot1-000001",
    )


def test_the_trial_store_keeps_the_template_id_and_none_from_older_devices(tmp_path: Path) -> None:
    with TrialStore.open(f"sqlite:///{tmp_path / 'trial.sqlite'}") as store:
        assert store.add(event("0123456789abcdef", 1)) and store.add(event(None, 2))
        stored = {e["track_id"]: e["template_id"] for e in store.events()}
    assert stored == {1: "0123456789abcdef", 2: None}
    older = json.loads(event(None).model_dump_json())
    del older["template_id"]
    assert MatchEvent.model_validate_json(json.dumps(older)).template_id is None  # absent from devices before it


# --- tightened templates: the threshold factor ---------------------------------------------------

STAMP = "2026-03-02T08:00:00.000+00:00"


def ada(factor: float | None = None) -> IdentityRecord:
    return IdentityRecord(
        "ada",
        "Ada",
        STAMP,
        (
            TemplateRecord(unit(1).tobytes(), 0.5, "ada1.jpg", STAMP),
            TemplateRecord(unit(2).tobytes(), None, "ada2.jpg", STAMP, factor),
        ),
    )


def test_a_gallery_without_factors_keeps_the_version_it_had_before_factors() -> None:
    # 8b8785b077ef7b5e: this content's version as the code before threshold factors computed it
    assert content_version(*MODEL, [ada()]) == "8b8785b077ef7b5e"
    assert content_version(*MODEL, [ada(0.9)]) not in ("8b8785b077ef7b5e", content_version(*MODEL, [ada(0.8)]))


def test_the_factor_goes_through_bundle_and_gallery_file_and_is_checked(tmp_path: Path) -> None:
    bundle = Bundle(*MODEL, content_version(*MODEL, [ada(0.75)]), (ada(0.75),))
    data = encode_bundle(bundle)
    parsed = parse_bundle(data)
    assert parsed.version == bundle.version and parsed.identities[0].templates[1].threshold_factor == 0.75
    plain = json.loads(encode_bundle(Bundle(*MODEL, content_version(*MODEL, [ada()]), (ada(),))))
    assert all("threshold_factor" not in t for t in plain["identities"][0]["templates"])
    with GalleryStore.from_bundle(parsed, tmp_path / "g.db", *MODEL, scaler=SCALER) as store:
        assert store.version == bundle.version
        assert set(store.bundle().identities[0].templates) == set(parsed.identities[0].templates)
    for wrong in (0, 1.5, -0.2, True, "0.5"):
        doc = json.loads(data)
        doc["identities"][0]["templates"][1]["threshold_factor"] = wrong
        with pytest.raises(GalleryBundleError, match="threshold factor must be a number above 0 and at most 1"):
            parse_bundle(json.dumps(doc).encode())
    with GalleryStore.create(tmp_path / "h.db", *MODEL, scaler=SCALER) as store:
        with pytest.raises(InvalidInput, match="threshold factor"):
            store.add("bob", "Bob", unit(3)[None], factors=[2.0])


def test_the_matcher_multiplies_the_templates_threshold_by_its_factor(tmp_path: Path) -> None:
    a = unit(5)
    probe = a + 0.3 * unit(6)
    distance = float(np.linalg.norm(probe - a))
    scale = float(SCALER.scales(a[None])[0])
    knob = 1.2 * distance / scale  # the template matches the probe at this knob, by a margin of 20%
    with GalleryStore.create(tmp_path / "g.db", *MODEL, scaler=SCALER) as store:
        store.add("ada", "Ada", a[None])
        match = store.matcher().match(probe, knob)
        assert match is not None and match.threshold == pytest.approx(knob * scale, rel=1e-5)
    with GalleryStore.create(tmp_path / "tight.db", *MODEL, scaler=SCALER) as store:
        store.add("ada", "Ada", a[None], factors=[0.8])  # threshold 0.96 x the distance: no match
        assert store.matcher().match(probe, knob) is None
        looser = store.matcher().match(probe, knob / 0.8 * 1.01)
        assert looser is not None and looser.threshold == pytest.approx(knob / 0.8 * 1.01 * scale * 0.8, rel=1e-5)
        assert store.matcher(per_template=False).match(probe, distance / 0.8 * 0.99) is None  # global too


def _as_schema_2(path: Path) -> None:
    """Make a gallery file look as the software before threshold factors wrote it."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("ALTER TABLE templates DROP COLUMN threshold_factor")
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")


def test_a_schema_2_gallery_is_migrated_on_open_with_its_version_unchanged(tmp_path: Path, caplog) -> None:
    path = tmp_path / "old.db"
    with GalleryStore.create(path, *MODEL, scaler=SCALER) as store:
        store.add("ada", "Ada", np.stack([unit(1), unit(2)]))
        version = store.version
    _as_schema_2(path)
    with caplog.at_level(logging.WARNING, logger="edge.gallery"), GalleryStore.open(path, *MODEL, scaler=SCALER) as s:
        assert s.version == version and s.matcher().version == version
        s.add("bob", "Bob", unit(3)[None], factors=[0.9])  # the migrated file takes factors
    assert "was schema 2: no threshold factors" in caplog.text
    with closing(sqlite3.connect(path)) as conn:
        assert dict(conn.execute("SELECT key, value FROM meta"))["schema_version"] == "3"
        assert sorted(conn.execute("SELECT identity_id, threshold_factor FROM templates")) == [
            ("ada", None),
            ("ada", None),
            ("bob", 0.9),
        ]
