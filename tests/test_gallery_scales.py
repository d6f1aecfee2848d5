"""Per-template thresholds: each template's stored scale, how matching uses it, and migrating
galleries of schema 1 or of another cohort (real files in tmp_path, a deterministic scaler)."""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing

import numpy as np
import pytest

from edge.gallery import GalleryCorrupt, GalleryError, GalleryStore, Match, Matcher, replace_gallery
from edge.gallery.embedding import EMBEDDING_BYTES
from tests.test_gallery import MODEL, SCALER, VectorScaler, fill, unit

# Schema 1 exactly as shipped before per-template thresholds.
V1_STATEMENTS = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE identities (identity_id TEXT PRIMARY KEY, name TEXT NOT NULL, enrolled_at TEXT NOT NULL)"
    " WITHOUT ROWID",
    f"""CREATE TABLE templates (
        id          INTEGER PRIMARY KEY,
        identity_id TEXT NOT NULL REFERENCES identities(identity_id),
        embedding   BLOB NOT NULL CHECK (length(embedding) = {EMBEDDING_BYTES}),
        quality     REAL,
        source      TEXT NOT NULL,
        created_at  TEXT NOT NULL
    )""",
    "CREATE INDEX templates_by_identity ON templates(identity_id)",
    "PRAGMA application_id = 1162297676",
)


def write_v1_gallery(path, people: dict[str, np.ndarray]) -> None:
    """A schema-1 gallery file, written with sqlite3 alone as the old software wrote it."""
    now = "2024-05-01T10:00:00.000+00:00"
    with closing(sqlite3.connect(path)) as conn, conn:
        for statement in V1_STATEMENTS:
            conn.execute(statement)
        meta = {"schema_version": "1", "embedding_dim": "128", "model_id": MODEL[0], "model_sha256": MODEL[1]}
        conn.executemany("INSERT INTO meta VALUES (?, ?)", [*meta.items(), ("created_at", now)])
        for identity_id, templates in people.items():
            conn.execute("INSERT INTO identities VALUES (?, ?, ?)", (identity_id, identity_id.title(), now))
            conn.executemany(
                "INSERT INTO templates (identity_id, embedding, quality, source, created_at) VALUES (?, ?, ?, ?, ?)",
                [
                    (identity_id, t.astype("<f4").tobytes(), 0.5, f"{identity_id}{k}.jpg", now)
                    for k, t in enumerate(templates)
                ],
            )


def stored(path) -> tuple[dict[str, str], list[float]]:
    with closing(sqlite3.connect(path)) as conn:
        return dict(conn.execute("SELECT key, value FROM meta")), [
            row[0] for row in conn.execute("SELECT scale FROM templates ORDER BY id")
        ]


def vec(*xs: float) -> np.ndarray:
    v = np.zeros(128, np.float32)
    v[: len(xs)] = xs
    return v


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(99)


def test_a_loose_template_matches_where_a_strict_one_refuses_at_the_same_distance(tmp_path):
    scaler = VectorScaler(factor=np.log(2.0))  # scale 2 for v[0] = 1, scale 1 for v[0] = 0
    loose, strict = vec(1.0, 0, 0), vec(0, 0, 5.0)
    with GalleryStore.create(tmp_path / "g.db", *MODEL, scaler=scaler) as store:
        store.add("loose", "Loose", loose[None])
        store.add("strict", "Strict", strict[None])
        matcher = store.matcher()
    offset = vec(0, 0, 0, 0.5)  # raw distance 0.5 from either template
    assert matcher.match(loose + offset, 0.3) == Match("loose", pytest.approx(0.5), pytest.approx(0.6))
    assert matcher.match(strict + offset, 0.3) is None
    assert matcher.match(strict + offset, 0.5) == Match("strict", pytest.approx(0.5), pytest.approx(0.5))
    assert matcher.nearest(strict + offset).normalized == pytest.approx(0.5)


def test_the_candidate_is_the_smallest_distance_over_scale_not_the_nearest_template():
    templates = np.stack([vec(0.4), vec(0, 0.6)])  # raw 0.4 (scale 1) and 0.6 (scale 3) from the origin
    matcher = Matcher(templates, ["near", "loose"], scales=np.array([1.0, 3.0]))
    probe = vec()
    assert matcher.match(probe, 0.25) == Match("loose", pytest.approx(0.6), pytest.approx(0.75))
    [many] = matcher.nearest_many(probe[None])
    assert (many.identity_id, many.scale) == ("loose", pytest.approx(3.0))
    global_mode = Matcher(templates, ["near", "loose"])
    assert global_mode.match(probe, 0.45) == Match("near", pytest.approx(0.4), 0.45)


def test_global_mode_gives_exactly_the_one_threshold_results(tmp_path, rng):
    with GalleryStore.create(tmp_path / "g.db", *MODEL, scaler=SCALER) as store:
        enrolled = fill(store, rng, 40)
        global_mode = store.matcher(per_template=False)
        per_template = store.matcher()
    templates = np.concatenate(list(enrolled.values()))
    ids = [i for i, t in enrolled.items() for _ in t]
    reference = Matcher(templates, ids)  # the matcher as it was before scales existed
    assert not global_mode.per_template and per_template.per_template
    offsets = np.linspace(0.3, 0.9, len(enrolled))  # near the threshold, in and out
    probes = np.concatenate([t[:1] + d * unit(rng, 1) for t, d in zip(enrolled.values(), offsets, strict=True)])
    for probe in probes:
        assert global_mode.match(probe, 0.6) == reference.match(probe, 0.6)
        assert global_mode.nearest(probe).scale == 1.0
    for found, expected in zip(global_mode.nearest_many(probes), reference.nearest_many(probes), strict=True):
        assert (found.identity_id, found.scale) == (expected.identity_id, 1.0)
        assert found.distance == pytest.approx(expected.distance, abs=1e-6)  # templates in another order
    decisions = [(global_mode.match(p, 0.6) is None, per_template.match(p, 0.6) is None) for p in probes]
    assert len(set(decisions)) > 1, "the scales must change some decisions, or this test shows nothing"


def test_template_counts_per_identity(tmp_path, rng):
    with GalleryStore.create(tmp_path / "g.db", *MODEL, scaler=SCALER) as store:
        fill(store, rng, 7)
        counts = store.matcher().template_counts()
        assert counts == {s.identity_id: s.templates for s in store.identities()}
    assert Matcher(np.empty((0, 128), np.float32), []).template_counts() == {}


def test_add_stores_each_templates_scale_and_the_cohort(tmp_path, rng):
    path = tmp_path / "g.db"
    templates = unit(rng, 3)
    with GalleryStore.create(path, *MODEL, scaler=SCALER) as store:
        store.add("alice", "Alice", templates)
    meta, scales = stored(path)
    assert (meta["schema_version"], meta["cohort_id"], meta["cohort_sha256"]) == ("3", SCALER.model_id, SCALER.sha256)
    np.testing.assert_allclose(scales, SCALER.scales(templates), rtol=1e-6)


def test_migrates_a_schema_1_gallery_once_with_one_warning(tmp_path, rng, caplog):
    path = tmp_path / "old.db"
    people = {"ada": unit(rng, 3), "bob": unit(rng, 2)}
    write_v1_gallery(path, people)
    with GalleryStore.open(path, *MODEL, scaler=VectorScaler(factor=0.0)) as reference:  # every scale 1
        reference_version = reference.version
    write_v1_gallery(other := tmp_path / "again.db", people)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="edge.gallery"):
        with GalleryStore.open(other, *MODEL, scaler=SCALER) as store:
            version, identities = store.version, store.identities()
            matcher = store.matcher()
    [record] = [r for r in caplog.records if r.name.startswith("edge.gallery")]
    message = record.getMessage()
    assert str(other) in message and "5 template(s) of 2 person(s)" in message and SCALER.model_id in message
    assert "was schema 1: one threshold for all" in message
    assert version == reference_version, "the content version hashes content only"
    assert [(i.identity_id, i.name, i.templates) for i in identities] == [("ada", "Ada", 3), ("bob", "Bob", 2)]
    meta, scales = stored(other)
    assert (meta["schema_version"], meta["cohort_id"]) == ("3", SCALER.model_id)
    np.testing.assert_allclose(scales, SCALER.scales(np.concatenate([people["ada"], people["bob"]])), rtol=1e-6)
    assert matcher.nearest(people["bob"][1]).scale == pytest.approx(float(SCALER.scales(people["bob"][1:])[0]))

    caplog.clear()
    before = other.read_bytes()
    with caplog.at_level(logging.WARNING, logger="edge.gallery"), GalleryStore.open(other, *MODEL, scaler=SCALER):
        pass
    assert not caplog.records and other.read_bytes() == before, "a migrated gallery opens without writing"


def test_a_gallery_scaled_by_another_cohort_is_rescaled(tmp_path, rng, caplog):
    path = tmp_path / "g.db"
    templates = unit(rng, 4)
    with GalleryStore.create(path, *MODEL, scaler=SCALER) as store:
        store.add("ada", "Ada", templates)
        version = store.version
    newer = VectorScaler("cohort_v2", "12" * 32, factor=-1.0)
    with caplog.at_level(logging.WARNING, logger="edge.gallery"), GalleryStore.open(path, *MODEL, scaler=newer) as s:
        assert s.version == version
    assert "cohort_v2" in caplog.text and f"were computed with cohort {SCALER.model_id}" in caplog.text
    meta, scales = stored(path)
    assert (meta["cohort_id"], meta["cohort_sha256"]) == ("cohort_v2", "12" * 32)
    np.testing.assert_allclose(scales, newer.scales(templates), rtol=1e-6)


class FailingScaler(VectorScaler):
    def __init__(self, result: str) -> None:
        super().__init__("broken_cohort", "34" * 32)
        self.result = result

    def scales(self, descriptors: np.ndarray) -> np.ndarray:
        if self.result == "raise":
            raise RuntimeError("cohort exploded")
        return np.full(len(descriptors), np.nan if self.result == "nan" else 0.0, np.float32)


@pytest.mark.parametrize("result", ["raise", "nan", "zero"])
def test_a_failed_migration_leaves_the_file_byte_for_byte(tmp_path, rng, result):
    path = tmp_path / "old.db"
    write_v1_gallery(path, {"ada": unit(rng, 2)})
    before = path.read_bytes()
    with pytest.raises((GalleryError, RuntimeError)):
        GalleryStore.open(path, *MODEL, scaler=FailingScaler(result))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.db"], "no journal left behind"


def test_bundle_round_trip_recomputes_scales_with_the_receivers_cohort(tmp_path, rng):
    with GalleryStore.create(tmp_path / "a.db", *MODEL, scaler=SCALER) as store:
        enrolled = fill(store, rng, 5)
        bundle = store.bundle()
    receiver = VectorScaler("their_cohort", "56" * 32, factor=0.5)
    target = tmp_path / "b.db"
    assert replace_gallery(target, bundle, *MODEL, scaler=receiver) == bundle.version
    meta, scales = stored(target)
    assert meta["cohort_id"] == "their_cohort"
    with GalleryStore.open(target, *MODEL, scaler=receiver) as copy:
        assert copy.version == bundle.version
        matcher = copy.matcher()
    templates = np.concatenate(list(enrolled.values()))
    assert sorted(scales) == pytest.approx(sorted(receiver.scales(templates).tolist()), rel=1e-6)
    probe = enrolled["p003"][0]
    assert matcher.nearest(probe).scale == pytest.approx(float(receiver.scales(probe[None])[0]), rel=1e-6)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), "wide"])
def test_a_corrupt_stored_scale_is_refused(tmp_path, rng, bad):
    path = tmp_path / "g.db"
    with GalleryStore.create(path, *MODEL, scaler=SCALER) as store:
        fill(store, rng, 3)
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("PRAGMA ignore_check_constraints = ON")  # as a damaged or hand-edited file
        conn.execute("UPDATE templates SET scale = ? WHERE id = 2", (bad,))
    before = path.read_bytes()
    with pytest.raises(GalleryCorrupt, match=str(path)):  # 0 and -1 at the integrity check, others later
        with GalleryStore.open(path, *MODEL, scaler=SCALER) as store:
            store.matcher()
    assert path.read_bytes() == before


def test_matcher_refuses_bad_scales():
    with pytest.raises(GalleryError, match="scales"):
        Matcher(np.ones((2, 128), np.float32), ["a", "b"], scales=np.array([1.0, 0.0]))
    with pytest.raises(GalleryError, match="scales"):
        Matcher(np.ones((2, 128), np.float32), ["a", "b"], scales=np.array([1.0]))
