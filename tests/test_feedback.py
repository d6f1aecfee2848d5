"""Negative feedback: template ids in match events, tightened and quarantined templates, and the
proposal, application and reversal of a change after an alert adjudicated false."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import test_deployments

from edge.central.deployments import feedback, watchlist
from edge.central.deployments.feedback import FeedbackError
from edge.central.deployments.gallery import watchlist_bundle
from edge.central.deployments.schema import migrate
from edge.central.deployments.vault import PhotoVault
from edge.central.trial.store import TrialStore
from edge.cli import main
from edge.config import load_settings
from edge.device.parts import configured_embedder, load_cohort
from edge.enrollment import Person
from edge.gallery import (
    Bundle,
    GalleryBundleError,
    GalleryStore,
    InvalidInput,
    Matcher,
    encode_bundle,
    parse_bundle,
    replace_gallery,
)
from edge.gallery.content import IdentityRecord, TemplateRecord, content_version, template_id
from edge.link.payloads import MatchEvent
from edge.vision import load_image, load_manifest
from edge.vision.cohort import Cohort
from edge.vision.pipeline import FaceCountError
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


# --- the cohort's figure: genuine comparisons beyond a threshold -------------------------------------


def shipped_cohort() -> Cohort:
    manifest = load_manifest()
    return Cohort.load(manifest, manifest.default_embedder)


def test_the_genuine_block_gives_the_miss_rate_and_none_without_it() -> None:
    cohort = shipped_cohort()
    assert cohort.genuine is not None and cohort.genuine_pairs > 10_000, "rebuilt with the genuine block"
    misses = [cohort.genuine_miss(t) for t in (0.0, 0.3, 0.4383, 0.6, 5.0)]
    assert misses[0] == 1.0 and misses[-1] == 0.0 and misses == sorted(misses, reverse=True)
    manifest = load_manifest()
    record = manifest.get(manifest.default_embedder, "embedder")
    raw = json.loads((manifest.directory / manifest.get(cohort.model_id, "cohort").file).read_text())
    del raw["genuine"]  # a cohort file made before the block
    older = Cohort.from_json(raw, cohort.model_id, "0" * 64, record.model_id, record.sha256)
    assert older.genuine is None and older.genuine_miss(0.4) is None
    raw["genuine"] = {"pairs": 10, "quantiles": [0.5, 0.4]}
    with pytest.raises(ValueError, match="ascending"):
        Cohort.from_json(raw, cohort.model_id, "0" * 64, record.model_id, record.sha256)


# --- negative feedback on a deployment, with real photos and the shipped cohort ---------------------

fleet = test_deployments.fleet  # fixtures, shared
photos_of = test_deployments.photos_of
spec = test_deployments.spec


class Scene:
    """A deployment with two listed people and a stranger whose nearest template is one of the
    first person's: the alert a device raises on the stranger at a knob where they match."""

    def __init__(self, store, fleet, photos_of, stills_vision, tmp_path: Path) -> None:
        self.engine, self.tmp = store.engine, tmp_path
        self.settings = load_settings()
        self.entry = configured_embedder(self.settings)
        self.cohort = load_cohort(self.settings, self.entry.model_id)
        self.pricing = feedback.Pricing(self.entry, self.cohort)
        watchlist.create(self.engine, spec(), fleet)
        self.vault = PhotoVault.of(fleet, create=True)
        names = [n for n, p in sorted(photos_of.items()) if len(p) >= 3]
        self.listed = [Person(n, tuple(photos_of[n][:2])) for n in names[:2]]
        for person in self.listed:
            watchlist.add_person(self.engine, self.vault, stills_vision, "market-day", person, "r", "ada")
        self.ada = self.listed[0].id
        rows = watchlist.templates_with_ids(self.engine, self.vault, "market-day")
        [(_, ids, templates)] = [r for r in rows if r[0].identity_id == self.ada]
        self.ids, self.templates = ids, templates
        everyone = np.concatenate([templates, *(t for p, _, t in rows if p.identity_id != self.ada)])  # Ada's first
        scales = self.cohort.scales(everyone)

        def normalized(probe: np.ndarray) -> np.ndarray:
            return np.linalg.norm(everyone - probe, axis=1) / scales

        def describe(path: Path) -> np.ndarray | None:
            try:
                found = stills_vision.describe_single(load_image(path), path.name, several="central")
            except FaceCountError:
                return None
            return None if found.rejected else found.embedded()

        genuine = describe(photos_of[names[0]][2])  # Ada's third photo, not enrolled
        assert genuine is not None
        self.genuine = genuine
        own = float(normalized(genuine)[: len(ids)].min())
        candidates = []
        for name in names[2:40]:
            probe = describe(photos_of[name][0])
            if probe is None:
                continue
            n = normalized(probe)
            order = np.argsort(n)
            if order[0] < len(ids) and n[order[0]] > own:  # nearest to one of Ada's, farther than her own
                candidates.append((float(n[order[0]]), float(n[order[1]]), probe))
        assert candidates, "no stranger is nearest to Ada's templates: pick other photos"
        first, second, self.stranger = min(candidates, key=lambda c: c[0])
        self.knob = min(first * 1.05, (first + second) / 2)  # the stranger matches Ada's nearest template only

    def matcher(self) -> Matcher:
        """The matcher a device builds from the deployment's gallery as it stands now."""
        path = self.tmp / f"device-{uuid.uuid4().hex}.sqlite"
        bundle = watchlist_bundle(self.engine, self.vault, "market-day", self.settings)
        replace_gallery(path, bundle, self.entry.model_id, self.entry.sha256, scaler=self.cohort)
        with GalleryStore.open(path, self.entry.model_id, self.entry.sha256, scaler=self.cohort) as gallery:
            return gallery.matcher()

    def alert(self, store, probe: np.ndarray, device: str = "cam-1", verdict: str | None = "false_alert") -> str:
        """The event the device raises on `probe` (as the loop makes it), stored, with a verdict."""
        matcher = self.matcher()
        match = matcher.match(probe, self.knob)
        assert match is not None
        e = MatchEvent(
            ts=datetime.now(timezone.utc),
            device_id=device,
            site="north",
            track_id=1,
            identity_id=match.identity_id,
            score=round(match.distance, 4),
            threshold=self.knob,
            template_threshold=math.ceil(max(match.threshold, match.distance) * 1e4) / 1e4,
            template_id=match.template_id,
            metric="euclidean",
            model_id=self.entry.model_id,
            gallery_version=matcher.version,
            window_id="cam.boot-000001",
        )
        assert store.add(e)
        if verdict:
            store.add_verdict(e.event_id, verdict, "olu")
        return e.event_id

    def version(self) -> str:
        return watchlist_bundle(self.engine, self.vault, "market-day", self.settings).version


@pytest.fixture
def central(db_url: str) -> Iterator[TrialStore]:
    """The trial database with the deployment tables, on SQLite and on a real PostgreSQL."""
    with TrialStore.open(db_url, also=(migrate,)) as opened:
        yield opened


@pytest.fixture
def scene(central, fleet, photos_of, stills_vision, tmp_path) -> Scene:
    return Scene(central, fleet, photos_of, stills_vision, tmp_path)


def test_tightening_stops_the_false_alert_keeps_the_genuine_match_and_reverts_exactly(central, scene) -> None:
    event_id = scene.alert(central, scene.stranger)
    before = scene.version()
    proposal = feedback.propose(central.engine, scene.vault, scene.pricing, event_id)
    assert (proposal.deployment, proposal.identity_id) == ("market-day", scene.ada)
    assert proposal.template_id in scene.ids
    assert proposal.new_threshold < proposal.distance <= proposal.threshold
    assert proposal.new_threshold == pytest.approx(math.floor((proposal.distance - 0.0001) * 1e4) / 1e4)
    assert proposal.false_alerts_per_1000_after < proposal.false_alerts_per_1000_before
    assert proposal.miss_before is not None and proposal.miss_after is not None, "the cohort has a genuine block"
    assert proposal.miss_after >= proposal.miss_before
    assert json.loads(json.dumps(proposal.as_json()))["factor"] == proposal.factor < 1

    adjustment = feedback.apply(central.engine, scene.vault, scene.pricing, event_id, "tighten", "admin")
    assert scene.version() != before, "a tightened template is a new gallery version"
    matcher = scene.matcher()
    assert matcher.match(scene.stranger, scene.knob) is None, "the same passer-by no longer alerts"
    genuine = matcher.match(scene.genuine, scene.knob)
    assert genuine is not None and genuine.identity_id == scene.ada, "Ada's own photo still matches"
    with pytest.raises(FeedbackError, match="tightened to factor .* already"):
        feedback.apply(central.engine, scene.vault, scene.pricing, event_id, "tighten", "admin")
    [made] = feedback.changes(central.engine, "market-day")
    assert made["id"] == adjustment and made["active"] and made["kind"] == "tighten" and made["made_by"] == "admin"
    assert made["threshold_after"] == proposal.new_threshold and made["figures"]["miss_after"] == proposal.miss_after

    assert feedback.revert(central.engine, adjustment, "admin2") == "market-day"
    assert scene.version() == before, "reverting restores the previous gallery exactly"
    [undone] = feedback.changes(central.engine, "market-day")
    assert not undone["active"] and undone["reverted_by"] == "admin2"
    with pytest.raises(FeedbackError, match=f"adjustment {adjustment} was reverted"):
        feedback.revert(central.engine, adjustment, "admin2")


def test_quarantine_leaves_the_template_out_but_never_the_persons_last(central, scene) -> None:
    event_id = scene.alert(central, scene.stranger)
    template = feedback.propose(central.engine, scene.vault, scene.pricing, event_id).template_id
    feedback.apply(central.engine, scene.vault, scene.pricing, event_id, "quarantine", "admin")
    bundle = watchlist_bundle(scene.engine, scene.vault, "market-day", scene.settings)
    [ada] = [r for r in bundle.identities if r.identity_id == scene.ada]
    assert [template_id(t.embedding) for t in ada.templates] == [t for t in scene.ids if t != template]
    assert scene.matcher().match(scene.stranger, scene.knob) is None
    with pytest.raises(FeedbackError, match="quarantined already"):
        feedback.propose(central.engine, scene.vault, scene.pricing, event_id)
    other = scene.templates[scene.ids.index(next(t for t in scene.ids if t != template))]
    last = scene.alert(central, other + 0.05 * unit(7))  # a false alert on Ada's other template
    with pytest.raises(FeedbackError, match="the person stays listed while other templates remain"):
        feedback.apply(central.engine, scene.vault, scene.pricing, last, "quarantine", "admin")


def test_feedback_is_refused_in_one_line(central, scene) -> None:
    engine, vault, pricing = central.engine, scene.vault, scene.pricing

    def refused(event_id: str, why: str) -> None:
        with pytest.raises(FeedbackError, match=why) as e:
            feedback.propose(engine, vault, pricing, event_id)
        assert "\n" not in str(e.value)

    refused("0" * 32, "no alert 0{32} in the trial database")
    older = event(None, 9)
    central.add(older)
    refused(older.event_id, "sent by a device before template ids: it cannot be tied to a template")
    refused(scene.alert(central, scene.stranger, device="cam-2"), "belongs to no deployment")
    refused(scene.alert(central, scene.stranger, verdict="true_alert"), "verdict true_alert: feedback takes")
    refused(scene.alert(central, scene.stranger, verdict=None), "no verdict")
    confirmed = scene.alert(central, scene.stranger, verdict="true_alert")
    central.add_verdict(confirmed, "confirmed_false", "officer")  # the engagement's verdict counts
    assert feedback.propose(engine, vault, pricing, confirmed).identity_id == scene.ada
    with pytest.raises(FeedbackError, match="kind 'loosen'"):
        feedback.apply(engine, vault, pricing, confirmed, "loosen", "admin")
    watchlist.remove_person(engine, "market-day", scene.ada)
    refused(confirmed, "no longer on market-day's watchlist")
    with pytest.raises(FeedbackError, match="no adjustment 99"):
        feedback.revert(engine, 99, "admin")


def test_the_cli_shows_tightens_lists_and_reverts(central, scene, fleet, db_url, capsys) -> None:
    event_id = scene.alert(central, scene.stranger)
    base = ["--db", db_url]
    keys = ["--fleet", str(fleet.root)]
    assert main(["deploy", "feedback", "show", event_id, *keys, *base]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (
        shown["event_id"] == event_id and shown["false_alerts_per_1000_after"] < shown["false_alerts_per_1000_before"]
    )
    assert main(["deploy", "feedback", "tighten", event_id, "--by", "admin", *keys, *base]) == 0
    out = capsys.readouterr().out
    assert "edge deploy deliver market-day" in out and '"kind": "tighten"' in out
    assert main(["deploy", "feedback", "list", "market-day", *base]) == 0
    [made] = json.loads(capsys.readouterr().out)
    assert main(["deploy", "feedback", "revert", str(made["id"]), "--by", "admin", *base]) == 0
    assert "reverted" in capsys.readouterr().out
    assert main(["deploy", "feedback", "revert", str(made["id"]), "--by", "admin", *base]) == 1
    assert "was reverted" in capsys.readouterr().err
    assert main(["deploy", "feedback", "show", "f" * 32, *keys, *base]) == 1
    assert capsys.readouterr().err.count("\n") == 1
