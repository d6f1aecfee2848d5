"""Gallery: SQLite store, versions, bundles and open-set matching, on real files in tmp_path.

Random unit vectors stand in for descriptors, and a scaler computing each template's scale from
its first component stands in for the cohort: every rule tested here (storage, versions,
nearest-template search, per-template thresholds) is independent of where both come from.
"""

from __future__ import annotations

import json
import sqlite3
import stat
from contextlib import closing

import numpy as np
import pytest

from edge.gallery import (
    GalleryBundleError,
    GalleryCorrupt,
    GalleryError,
    GalleryExists,
    GalleryModelMismatch,
    GalleryNotFound,
    GallerySchemaError,
    GalleryStore,
    InvalidEmbedding,
    InvalidInput,
    Match,
    Matcher,
    Nearest,
    UnknownIdentity,
)
from edge.gallery import matcher as matcher_module
from edge.gallery import store as store_module

MODEL = ("dlib_resnet_v1_int8", "ab" * 32)
OTHER_MODEL = ("dlib_resnet_v1_fp16", "cd" * 32)
THRESHOLD = 0.6


class VectorScaler:
    """A deterministic `TemplateScaler`: scale = exp(2 * v[0]), about 0.6 to 1.6 for unit vectors."""

    def __init__(self, model_id: str = "test_cohort", sha256: str = "ef" * 32, factor: float = 2.0) -> None:
        self.model_id, self.sha256, self.factor = model_id, sha256, factor
        self.calls = 0

    def scales(self, descriptors: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.exp(self.factor * np.asarray(descriptors, np.float64)[:, 0]).astype(np.float32)


SCALER = VectorScaler()


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, 128)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def store(tmp_path):
    with GalleryStore.create(tmp_path / "gallery.db", *MODEL, scaler=SCALER) as s:
        yield s


def fill(store: GalleryStore, rng: np.random.Generator, people: int = 20) -> dict[str, np.ndarray]:
    """Enrol `people` identities with 1-5 templates each; returns id -> templates."""
    enrolled = {}
    for i in range(people):
        templates = unit(rng, 1 + i % 5)
        store.add(
            f"p{i:03d}",
            f"Person {i}",
            templates,
            [0.5] * len(templates),
            [f"p{i}_{k}.jpg" for k in range(len(templates))],
        )
        enrolled[f"p{i:03d}"] = templates
    return enrolled


def stored_blobs(path) -> list[bytes]:
    """Template embeddings as stored, read through a separate plain sqlite3 connection."""
    with closing(sqlite3.connect(path)) as conn:
        return [row[0] for row in conn.execute("SELECT embedding FROM templates")]


def brute_force(enrolled: dict[str, np.ndarray], probe: np.ndarray) -> dict[str, float]:
    """Reference: float64 normalized distance (distance / scale) from probe to each identity,
    the minimum over its templates."""
    p = probe.astype(np.float64)
    return {
        i: float((np.linalg.norm(t.astype(np.float64) - p, axis=1) / SCALER.scales(t)).min())
        for i, t in enrolled.items()
    }


# --- store --------------------------------------------------------------------------------


def test_create_add_list_remove(store, rng):
    store.add("alice", "Alice", unit(rng, 3), [0.9, 0.8, 0.7], ["a1.jpg", "a2.jpg", "a3.jpg"])
    store.add("bob", "Bob", unit(rng, 2))
    assert [(s.identity_id, s.name, s.templates) for s in store.identities()] == [
        ("alice", "Alice", 3),
        ("bob", "Bob", 2),
    ]
    assert store.identities()[0].enrolled_at.tzinfo is not None

    assert store.remove("alice") == 3
    assert [s.identity_id for s in store.identities()] == ["bob"]
    assert len(stored_blobs(store.path)) == 2, "every template of the removed person must be gone"
    assert store.matcher().identity_ids == ("bob",)


def test_remove_unknown_identity_changes_nothing(store, rng):
    fill(store, rng, 3)
    before = store.version
    with pytest.raises(UnknownIdentity, match="nobody"):
        store.remove("nobody")
    assert store.version == before
    assert len(store.identities()) == 3


def test_add_appends_to_same_person_and_refuses_a_rename(store, rng):
    store.add("alice", "Alice", unit(rng, 2))
    store.add("alice", "Alice", unit(rng, 1))
    assert store.identities()[0].templates == 3
    before = store.version
    with pytest.raises(InvalidInput, match="enrolled as 'Alice'"):
        store.add("alice", "Alicia", unit(rng, 1))
    assert store.version == before and store.identities()[0].templates == 3


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"qualities": [0.5]}, InvalidInput),
        ({"sources": ["a.jpg"]}, InvalidInput),
        ({"qualities": [0.5, float("nan")]}, InvalidInput),
        ({"sources": ["a.jpg", "x" * 10_000]}, InvalidInput),
    ],
)
def test_add_rejects_bad_qualities_and_sources(store, rng, kwargs, error):
    with pytest.raises(error):
        store.add("alice", "Alice", unit(rng, 2), **kwargs)
    assert store.identities() == []


@pytest.mark.parametrize("identity_id", ["", " padded", 42, "x" * 500])
def test_add_rejects_bad_identity_ids(store, rng, identity_id):
    with pytest.raises(InvalidInput):
        store.add(identity_id, "Someone", unit(rng, 1))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_add_rejects_non_finite_embeddings_atomically(store, rng, bad):
    embeddings = unit(rng, 3)
    embeddings[2, 17] = bad
    with pytest.raises(InvalidEmbedding, match="NaN or inf"):
        store.add("alice", "Alice", embeddings)
    assert store.identities() == []


@pytest.mark.parametrize(
    "embeddings",
    [
        np.zeros((2, 64), np.float32),
        np.zeros((128,), np.float32),
        np.zeros((0, 128), np.float32),
        np.zeros((2, 128), np.int32),
        np.full((1, 128), 1e39),  # finite float64 that overflows float32
    ],
)
def test_add_rejects_wrong_shape_dtype_or_range(store, embeddings):
    with pytest.raises(InvalidEmbedding):
        store.add("alice", "Alice", embeddings)
    assert store.identities() == []


def test_add_accepts_float64_and_stores_float32(store, rng):
    embeddings = unit(rng, 1).astype(np.float64)
    store.add("alice", "Alice", embeddings)
    [blob] = stored_blobs(store.path)
    np.testing.assert_array_equal(np.frombuffer(blob, "<f4"), embeddings[0].astype(np.float32))


def test_reopen_persists_content_and_version(tmp_path, rng):
    path = tmp_path / "g.db"
    with GalleryStore.create(path, *MODEL, scaler=SCALER) as s:
        enrolled = fill(s, rng, 10)
        listed, version = s.identities(), s.version
    with GalleryStore.open(path, *MODEL, scaler=SCALER) as s:
        assert s.identities() == listed
        assert s.version == version
        assert s.model_id == MODEL[0] and s.model_sha256 == MODEL[1]
        probe = enrolled["p003"][0]
        assert s.matcher().nearest(probe).identity_id == "p003"


def test_gallery_file_is_private(store):
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_create_refuses_existing_file(tmp_path):
    path = tmp_path / "g.db"
    path.write_bytes(b"keep me")
    with pytest.raises(GalleryExists, match=str(path)):
        GalleryStore.create(path, *MODEL, scaler=SCALER)
    assert path.read_bytes() == b"keep me"


def test_create_makes_a_missing_folder_private_and_names_one_it_cannot_make(tmp_path):
    path = tmp_path / "fresh" / "board" / "g.db"
    GalleryStore.create(path, *MODEL, scaler=SCALER).close()
    assert path.exists() and path.parent.stat().st_mode & 0o777 == 0o700
    blocked = tmp_path / "a-file"
    blocked.write_bytes(b"")
    with pytest.raises(GalleryError, match=f"cannot create gallery {blocked / 'g.db'}"):
        GalleryStore.create(blocked / "g.db", *MODEL, scaler=SCALER)


def test_create_rejects_a_short_sha256(tmp_path):
    with pytest.raises(InvalidInput, match="64 hex"):
        GalleryStore.create(tmp_path / "g.db", MODEL[0], "ab12", scaler=SCALER)
    assert not (tmp_path / "g.db").exists()


# --- versions -----------------------------------------------------------------------------


def test_version_changes_on_add_and_remove_and_returns_with_the_content(store, rng):
    empty = store.version
    assert len(empty) == 16 and int(empty, 16) >= 0
    store.add("alice", "Alice", unit(rng, 2))
    one = store.version
    bob = unit(rng, 1)
    store.add("bob", "Bob", bob)
    two = store.version
    assert len({empty, one, two}) == 3
    store.remove("bob")
    assert store.version == one, "the version is defined by content, not history"
    store.add("bob", "Bob", bob)
    assert store.version == two


def test_version_is_independent_of_insertion_order_and_time(tmp_path, rng, monkeypatch):
    people = {f"p{i}": unit(rng, 3) for i in range(6)}
    with (
        GalleryStore.create(tmp_path / "a.db", *MODEL, scaler=SCALER) as a,
        GalleryStore.create(tmp_path / "b.db", *MODEL, scaler=SCALER) as b,
    ):
        monkeypatch.setattr(store_module, "utc_now", lambda: "2020-01-01T00:00:00.000+00:00")
        for pid, templates in people.items():
            a.add(pid, pid.upper(), templates, [0.1, 0.2, 0.3], ["x", "y", "z"])
        monkeypatch.setattr(store_module, "utc_now", lambda: "2031-06-30T12:00:00.000+00:00")
        for pid, templates in reversed(people.items()):
            order = [2, 0, 1]
            b.add(
                pid,
                pid.upper(),
                templates[order],
                [[0.1, 0.2, 0.3][k] for k in order],
                [["x", "y", "z"][k] for k in order],
            )
        assert a.identities()[0].enrolled_at != b.identities()[0].enrolled_at
        assert a.version == b.version


def test_version_sees_every_content_change(tmp_path, rng):
    templates = unit(rng, 2)
    nudged = templates.copy()
    nudged[1, 5] = np.nextafter(nudged[1, 5], np.float32(2))  # one ulp
    base = (MODEL, "Alice", templates, [0.5, 0.6], ["a.jpg", "b.jpg"])
    variants = [
        base,
        (MODEL, "Alice", nudged, [0.5, 0.6], ["a.jpg", "b.jpg"]),
        (MODEL, "Alicia", templates, [0.5, 0.6], ["a.jpg", "b.jpg"]),
        (MODEL, "Alice", templates, [0.5, 0.7], ["a.jpg", "b.jpg"]),
        (MODEL, "Alice", templates, [0.5, None], ["a.jpg", "b.jpg"]),
        (MODEL, "Alice", templates, [0.5, 0.6], ["a.jpg", "c.jpg"]),
        (OTHER_MODEL, "Alice", templates, [0.5, 0.6], ["a.jpg", "b.jpg"]),
    ]
    versions = set()
    for i, (model, name, t, qualities, sources) in enumerate(variants):
        with GalleryStore.create(tmp_path / f"{i}.db", *model, scaler=SCALER) as s:
            s.add("alice", name, t, qualities, sources)
            versions.add(s.version)
    assert len(versions) == len(variants)


def test_version_follows_changes_made_through_another_connection(tmp_path, rng):
    path = tmp_path / "g.db"
    with (
        GalleryStore.create(path, *MODEL, scaler=SCALER) as writer,
        GalleryStore.open(path, *MODEL, scaler=SCALER) as reader,
    ):
        before = reader.version
        writer.add("alice", "Alice", unit(rng, 1))
        assert reader.version == writer.version != before


# --- refusing bad files -------------------------------------------------------------------


def test_open_refuses_a_gallery_of_another_embedder(tmp_path, rng):
    path = tmp_path / "g.db"
    with GalleryStore.create(path, *MODEL, scaler=SCALER) as s:
        fill(s, rng, 2)
    before = path.read_bytes()
    for running in (OTHER_MODEL, (MODEL[0], OTHER_MODEL[1])):
        with pytest.raises(GalleryModelMismatch) as info:
            GalleryStore.open(path, *running, scaler=SCALER)
        message = str(info.value)
        assert str(path) in message and MODEL[0] in message and running[0] in message and running[1] in message
    assert path.read_bytes() == before


def test_missing_file_is_a_clear_error_and_is_not_created(tmp_path):
    path = tmp_path / "nope.db"
    with pytest.raises(GalleryNotFound, match=str(path)):
        GalleryStore.open(path, *MODEL, scaler=SCALER)
    assert not path.exists()


def test_garbage_file_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "g.db"
    garbage = np.random.default_rng(7).integers(0, 256, 8192, dtype=np.uint8).tobytes()
    path.write_bytes(garbage)
    with pytest.raises(GalleryCorrupt, match=str(path)):
        GalleryStore.open(path, *MODEL, scaler=SCALER)
    assert path.read_bytes() == garbage
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.db"], "no journal or side file left behind"


def test_truncated_gallery_is_refused_and_left_untouched(tmp_path, rng):
    path = tmp_path / "g.db"
    with GalleryStore.create(path, *MODEL, scaler=SCALER) as s:
        fill(s, rng, 200)
    truncated = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(truncated)
    with pytest.raises(GalleryCorrupt, match=str(path)):
        GalleryStore.open(path, *MODEL, scaler=SCALER)
    assert path.read_bytes() == truncated


def test_damaged_page_inside_a_gallery_is_refused_and_left_untouched(tmp_path, rng):
    path = tmp_path / "g.db"
    with GalleryStore.create(path, *MODEL, scaler=SCALER) as s:
        fill(s, rng, 200)
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    middle = (len(data) // page_size // 2) * page_size
    data[middle + 8 : middle + 24] = b"\xff" * 16  # cell pointers (or child page) out of range
    path.write_bytes(bytes(data))
    with pytest.raises(GalleryCorrupt, match=str(path)):  # found only by the integrity check
        GalleryStore.open(path, *MODEL, scaler=SCALER)
    assert path.read_bytes() == data


@pytest.mark.parametrize("content", [b"", None])
def test_sqlite_file_that_is_not_a_gallery_is_refused_and_left_untouched(tmp_path, content):
    path = tmp_path / "other.db"
    if content is None:
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE notes (text TEXT)")
        conn.close()
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    with pytest.raises(GallerySchemaError, match="not an edge gallery"):
        GalleryStore.open(path, *MODEL, scaler=SCALER)
    assert path.read_bytes() == before


def test_gallery_of_another_schema_version_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "g.db"
    GalleryStore.create(path, *MODEL, scaler=SCALER).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(GallerySchemaError, match="schema version 99"):
        GalleryStore.open(path, *MODEL, scaler=SCALER)
    assert path.read_bytes() == before


def test_gallery_with_a_missing_table_is_refused(tmp_path):
    path = tmp_path / "g.db"
    GalleryStore.create(path, *MODEL, scaler=SCALER).close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE templates")
    conn.close()
    with pytest.raises(GallerySchemaError, match="templates"):
        GalleryStore.open(path, *MODEL, scaler=SCALER)


# --- bundles ------------------------------------------------------------------------------


def test_export_import_round_trip_keeps_the_version(tmp_path, store, rng):
    enrolled = fill(store, rng, 15)
    bundle = tmp_path / "bundle.json"
    assert store.export(bundle) == store.version
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
    doc = json.loads(bundle.read_text())
    assert doc["embedder"]["model_id"] == MODEL[0] and doc["version"] == store.version

    with GalleryStore.from_bundle(bundle, tmp_path / "copy.db", *MODEL, scaler=SCALER) as copy:
        assert copy.version == store.version
        assert copy.identities() == store.identities()
        probe = enrolled["p007"][1] + 0.01
        assert copy.matcher().nearest(probe) == store.matcher().nearest(probe)

    with GalleryStore.create(tmp_path / "other.db", *MODEL, scaler=SCALER) as other:
        other.add("stranger", "Stranger", unit(rng, 2))
        assert other.import_bundle(bundle) == store.version
        assert other.version == store.version
        assert "stranger" not in {s.identity_id for s in other.identities()}


def test_bundle_of_another_embedder_is_refused(tmp_path, rng):
    with GalleryStore.create(tmp_path / "other.db", *OTHER_MODEL, scaler=SCALER) as other:
        fill(other, rng, 3)
        other.export(tmp_path / "bundle.json")
    with pytest.raises(GalleryModelMismatch, match=OTHER_MODEL[0]):
        GalleryStore.from_bundle(tmp_path / "bundle.json", tmp_path / "new.db", *MODEL, scaler=SCALER)
    assert not (tmp_path / "new.db").exists()
    with GalleryStore.create(tmp_path / "g.db", *MODEL, scaler=SCALER) as s:
        s.add("alice", "Alice", unit(rng, 1))
        before = s.version
        with pytest.raises(GalleryModelMismatch):
            s.import_bundle(tmp_path / "bundle.json")
        assert s.version == before


def _edit_bundle(path, edit):
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    "edit, problem",
    [
        (lambda d: d["identities"][0].update(name="Mallory"), "does not match its content"),
        (lambda d: d["identities"][0]["templates"][0].update(embedding="AAAA"), "bytes"),
        (
            lambda d: d["identities"][0]["templates"][0].update(
                embedding=__import__("base64").b64encode(np.full(128, np.nan, "<f4").tobytes()).decode()
            ),
            "NaN",
        ),
        (lambda d: d["identities"].append(dict(d["identities"][0])), "more than once"),
        (lambda d: d["identities"][0].update(templates=[]), "no templates"),
        (lambda d: d.pop("version"), "version"),
        (lambda d: d.update(format="something-else"), "not an"),
    ],
)
def test_damaged_bundle_is_refused_and_changes_nothing(tmp_path, store, rng, edit, problem):
    fill(store, rng, 3)
    bundle = tmp_path / "bundle.json"
    store.export(bundle)
    _edit_bundle(bundle, edit)
    before = store.version
    with pytest.raises(GalleryBundleError, match=problem):
        store.import_bundle(bundle)
    assert store.version == before
    with pytest.raises(GalleryBundleError):
        GalleryStore.from_bundle(bundle, tmp_path / "new.db", *MODEL, scaler=SCALER)
    assert not (tmp_path / "new.db").exists()


def test_bundle_that_is_not_json_is_refused(tmp_path):
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(b"\x00\xffnot json")
    with pytest.raises(GalleryBundleError, match=str(bundle)):
        GalleryStore.from_bundle(bundle, tmp_path / "new.db", *MODEL, scaler=SCALER)


# --- matching -----------------------------------------------------------------------------


def test_nearest_agrees_with_brute_force(store, rng):
    enrolled = fill(store, rng, 60)
    matcher = store.matcher()
    assert len(matcher) == 60 and matcher.template_count == sum(len(t) for t in enrolled.values())
    near = np.concatenate([t[:1] + 0.05 * unit(rng, 1) for t in enrolled.values()])
    probes = np.concatenate([near, unit(rng, 40)])
    for probe in probes:
        reference = brute_force(enrolled, probe)
        best = min(reference, key=reference.get)
        found = matcher.nearest(probe)
        assert found.normalized == pytest.approx(reference[best], abs=1e-5)
        assert reference[found.identity_id] == pytest.approx(reference[best], abs=1e-5)
        nearest_template = enrolled[found.identity_id][
            np.argmin(
                np.linalg.norm(enrolled[found.identity_id] - probe, axis=1) / SCALER.scales(enrolled[found.identity_id])
            )
        ]
        assert found.distance == pytest.approx(float(np.linalg.norm(nearest_template - probe)), abs=1e-5)
        assert found.scale == pytest.approx(float(SCALER.scales(nearest_template[None])[0]), rel=1e-6)


def test_nearest_many_agrees_with_nearest(store, rng, monkeypatch):
    fill(store, rng, 30)
    matcher = store.matcher()
    probes = unit(rng, 25)
    single = [matcher.nearest(p) for p in probes]
    for batch_scores in (1 << 22, matcher.template_count * 4):  # one chunk, then several
        monkeypatch.setattr(matcher_module, "_BATCH_SCORES", batch_scores)
        many = matcher.nearest_many(probes)
        assert [m.identity_id for m in many] == [s.identity_id for s in single]
        np.testing.assert_allclose([m.distance for m in many], [s.distance for s in single], atol=1e-5)
        np.testing.assert_allclose([m.scale for m in many], [s.scale for s in single], rtol=1e-6)
    assert matcher.nearest_many(np.empty((0, 128), np.float32)) == []


def test_match_is_open_set(store, rng):
    enrolled = fill(store, rng, 40)
    matcher = store.matcher()
    probe = enrolled["p012"][0] + 0.02 * unit(rng, 1)[0]
    found = matcher.match(probe, THRESHOLD)
    assert isinstance(found, Match) and found.identity_id == "p012"
    assert found.threshold == pytest.approx(THRESHOLD * matcher.nearest(probe).scale)
    assert found.distance <= found.threshold

    stranger = unit(rng, 1)[0]
    nearest = matcher.nearest(stranger)
    assert nearest is not None and nearest.normalized > THRESHOLD, "random unit vectors are ~1.4 apart"
    assert matcher.match(stranger, THRESHOLD) is None, "never the nearest name regardless"


def test_threshold_boundary_is_inclusive_and_lower_is_stricter():
    template = np.zeros((1, 128), np.float32)
    template[0, 0] = 1.0
    probe = np.zeros(128, np.float32)
    probe[0] = 1.0
    probe[1] = 0.5  # distance exactly 0.5
    matcher = Matcher(template, ["alice"])
    assert matcher.match(probe, 0.5) == Match("alice", 0.5, 0.5)
    assert matcher.match(probe, 0.4999) is None
    with pytest.raises(InvalidInput):
        matcher.match(probe, float("nan"))


def test_identity_distance_is_the_minimum_over_its_templates():
    def vec(*xs):
        v = np.zeros(128, np.float32)
        v[: len(xs)] = xs
        return v

    probe = vec(0, 0)
    # alice: one template far (2.0), one near (0.3); her mean (1.15) is worse than bob's 0.5.
    templates = np.stack([vec(2.0, 0), vec(0.3, 0), vec(0, 0.5)])
    matcher = Matcher(templates, ["alice", "alice", "bob"])
    assert matcher.nearest(probe) == Nearest("alice", pytest.approx(0.3, abs=1e-6))
    assert matcher.match(probe, 0.4).identity_id == "alice"
    assert matcher.nearest_many(probe[None])[0].identity_id == "alice"


def test_bad_probes_are_rejected(store, rng):
    fill(store, rng, 3)
    matcher = store.matcher()
    for bad in (np.nan, np.inf):
        probe = unit(rng, 1)[0]
        probe[3] = bad
        with pytest.raises(InvalidEmbedding):
            matcher.nearest(probe)
        with pytest.raises(InvalidEmbedding):
            matcher.match(probe, THRESHOLD)
        with pytest.raises(InvalidEmbedding):
            matcher.nearest_many(probe[None])
    with pytest.raises(InvalidEmbedding):
        matcher.nearest(np.zeros(64, np.float32))
    with pytest.raises(InvalidEmbedding):
        matcher.nearest_many(np.zeros((2, 64), np.float32))


def test_empty_gallery(store, rng):
    matcher = store.matcher()
    assert len(matcher) == 0 and matcher.template_count == 0
    assert matcher.version == store.version
    probe = unit(rng, 1)[0]
    assert matcher.nearest(probe) is None
    assert matcher.match(probe, 10.0) is None
    assert matcher.nearest_many(unit(rng, 2)) == [None, None]
    with pytest.raises(InvalidEmbedding):
        matcher.nearest(np.full(128, np.nan, np.float32))


def test_matcher_is_a_snapshot_rebuilt_after_changes(store, rng):
    alice = unit(rng, 1)
    store.add("alice", "Alice", alice)
    old = store.matcher()
    assert old.version == store.version
    bob = unit(rng, 1)
    store.add("bob", "Bob", bob)
    assert old.nearest(bob[0]).identity_id == "alice", "an existing matcher never changes"
    new = store.matcher()
    assert new.version == store.version != old.version
    assert new.match(bob[0], THRESHOLD).identity_id == "bob"
    store.remove("bob")
    assert store.matcher().match(bob[0], THRESHOLD) is None


def test_errors_share_one_base():
    for error in (
        GalleryBundleError,
        GalleryCorrupt,
        GalleryModelMismatch,
        GalleryNotFound,
        InvalidEmbedding,
    ):
        assert issubclass(error, GalleryError)
    assert issubclass(InvalidEmbedding, ValueError)
