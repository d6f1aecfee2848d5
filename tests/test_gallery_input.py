"""Hostile input at every way into a gallery: `edge gallery import`, the bundle of a `gallery/set`
push (`parse_bundle`), `edge enroll`, the store itself, and a gallery file written by other
software. Each is refused with one clear line, before any arithmetic on it, and changes nothing."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
import warnings
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from support_cohort import cohort_for
from test_cli_errors import one_line_error

from edge.gallery import GalleryBundleError, GalleryError, GalleryStore, InvalidInput, parse_bundle
from edge.gallery.bundle import MAX_BYTES
from edge.gallery.content import IdentityRecord, TemplateRecord, content_version, utc_now


@pytest.fixture
def embedder(manifest):
    return manifest.get(manifest.default_embedder, "embedder")


@pytest.fixture
def gallery(tmp_path, embedder) -> Path:
    """A gallery with one person in it, which no refused input may change."""
    path = tmp_path / "gallery.sqlite"
    with GalleryStore.create(path, embedder.model_id, embedder.sha256, scaler=cohort_for(embedder.model_id)) as store:
        store.add("grace", "Grace", descriptor())
    return path


def descriptor(length: float = 0.5) -> np.ndarray:
    v = np.random.default_rng(7).normal(size=(1, 128))
    return (v / np.linalg.norm(v) * length).astype(np.float32)


def bundle_bytes(
    embedder,
    identity_id: str = "ada",
    name: str = "Ada",
    source: str = "ada.jpg",
    model_id: str | None = None,
    vector: np.ndarray | None = None,
) -> bytes:
    """A bundle as an attacker would write it: every field as given, the version made to fit."""
    blob = (descriptor() if vector is None else vector).astype("<f4").tobytes()
    now = utc_now()
    model_id = embedder.model_id if model_id is None else model_id
    try:
        version = content_version(
            model_id,
            embedder.sha256,
            [IdentityRecord(identity_id, name, now, (TemplateRecord(blob, 0.9, source, now),))],
        )
    except UnicodeEncodeError:  # a lone surrogate has no UTF-8 and so no version: refused before it counts
        version = "0" * 16
    template = {"embedding": base64.b64encode(blob).decode(), "quality": 0.9, "source": source, "created_at": now}
    doc = {
        "format": "edge-gallery-bundle",
        "format_version": 1,
        "embedder": {"model_id": model_id, "sha256": embedder.sha256, "dim": 128, "dtype": "float32-le"},
        "version": version,
        "exported_at": now,
        "identities": [{"identity_id": identity_id, "name": name, "enrolled_at": now, "templates": [template]}],
    }
    return json.dumps(doc).encode()  # ASCII escapes carry any character, a lone surrogate too


def import_argv(gallery: Path | str, bundle: Path | str) -> list[str]:
    return ["gallery", "import", "--gallery", str(gallery), str(bundle)]


# --- bundle files: regular files only, of a stated size at most --------------------------------


@pytest.mark.parametrize("kind", ["device", "folder"])
def test_import_refuses_what_is_not_a_regular_file(gallery, tmp_path, capsys, kind):
    source = Path("/dev/zero") if kind == "device" else tmp_path
    before = gallery.read_bytes()
    err = one_line_error(capsys, import_argv(gallery, source), "gallery")
    assert f"gallery bundle {source} is not a regular file" in err
    assert gallery.read_bytes() == before


def test_import_of_a_fifo_answers_at_once(gallery, tmp_path):
    """In a process of its own, so that a regression (a read waiting for a writer) fails on the
    timeout instead of hanging the test run."""
    fifo = tmp_path / "bundle.fifo"
    os.mkfifo(fifo)
    done = subprocess.run(
        [sys.executable, "-m", "edge.cli", *import_argv(gallery, fifo)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1 and done.stderr.strip() == f"edge gallery: gallery bundle {fifo} is not a regular file"


def test_import_refuses_a_bundle_above_the_size_limit(gallery, tmp_path, capsys):
    big = tmp_path / "big.json"
    with big.open("wb") as f:
        f.truncate(MAX_BYTES + 1)  # sparse: no disk used
    err = one_line_error(capsys, import_argv(gallery, big), "gallery")
    assert f"{MAX_BYTES:,} bytes" in err and "32 MiB" in err


@pytest.mark.parametrize("folder", ["", "tmp_path"], ids=["empty", "folder"])
def test_import_onto_a_folder_is_refused(embedder, tmp_path, capsys, folder):
    """An empty --gallery is the current folder to pathlib."""
    folder = str(tmp_path) if folder == "tmp_path" else folder
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(bundle_bytes(embedder))
    err = one_line_error(capsys, import_argv(folder, bundle), "gallery")
    assert f"gallery {Path(folder)} is a folder" in err
    assert [p.name for p in tmp_path.iterdir()] == ["bundle.json"]


# --- template vectors: finite and of a face descriptor's length, checked before arithmetic -------


@pytest.mark.parametrize("value", [3e38, 1e3], ids=["near-float32-max", "too-long"])
def test_an_overlong_template_is_refused_with_one_line_and_no_warning(embedder, gallery, tmp_path, capsys, value):
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(bundle_bytes(embedder, vector=np.full(128, value)))
    before = gallery.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow warnings become failures
        err = one_line_error(capsys, import_argv(gallery, bundle), "gallery")
        assert "long, above 100" in err
        with GalleryStore.open(gallery, embedder.model_id, embedder.sha256, scaler=cohort_for(embedder.model_id)) as s:
            with pytest.raises(InvalidInput, match="long, above 100"):
                s.add("ada", "Ada", np.full((1, 128), value, np.float32))
    assert gallery.read_bytes() == before


# --- identity ids: one check, wherever an id comes in --------------------------------------------

BAD_IDS = {
    "nul": "ada\x00lovelace",
    "newline": "ada\nlovelace",
    "escape": "ada\x1b[31m",
    "del": "ada\x7f",
    "c1-control": "ada\x85",
    "bidi-override": "ada\u202egnp.exe",
    "zero-width": "ada\u200b",
    "line-separator": "ada\u2028x",
    "lone-surrogate": "ada\udcff",
    "over-128": "a" * 129,
}


@pytest.mark.parametrize("bad", list(BAD_IDS.values()), ids=list(BAD_IDS))
def test_every_way_into_a_gallery_refuses_a_bad_identity_id(embedder, gallery, tmp_path, capsys, bad):
    before = gallery.read_bytes()
    data = bundle_bytes(embedder, identity_id=bad)
    with pytest.raises(GalleryBundleError, match="identity id"):
        parse_bundle(data, "gallery push 7's bundle")  # what a gallery/set push is opened to
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(data)
    assert "identity id" in one_line_error(capsys, import_argv(gallery, bundle), "gallery")
    missing_photo = str(tmp_path / "never-read.jpg")  # the id is refused before any photo is read
    argv = ["enroll", "--gallery", str(gallery), "--name", "Ada", "--id", bad, missing_photo]
    assert "identity id" in one_line_error(capsys, argv, "enroll")
    scaler = cohort_for(embedder.model_id)
    with GalleryStore.open(gallery, embedder.model_id, embedder.sha256, scaler=scaler) as store:
        with pytest.raises(InvalidInput, match="identity id"):
            store.add(bad, "Ada", descriptor())
        assert [i.identity_id for i in store.identities()] == ["grace"]
    assert gallery.read_bytes() == before
    stored = bad.encode("utf-8", "surrogateescape")  # as other software may write it, even not UTF-8
    with closing(sqlite3.connect(gallery)) as db, db:
        db.execute("UPDATE identities SET identity_id = CAST(? AS TEXT)", (stored,))
        db.execute("UPDATE templates SET identity_id = CAST(? AS TEXT)", (stored,))
    with GalleryStore.open(gallery, embedder.model_id, embedder.sha256, scaler=scaler) as store:
        with pytest.raises(GalleryError, match=f"gallery {gallery}.*identity[ _]id"):
            store.matcher()  # what the device matches with, and whose ids its match events carry


@pytest.mark.parametrize(
    ("field", "what", "value"),
    [
        ("name", "name", "Ada\x00"),
        ("name", "name", "Ada\x1b[2J"),
        ("source", "source", "ada\x00.jpg"),
        ("model_id", "embedder model id", "dlib\x00"),
    ],
)
def test_names_sources_and_embedder_ids_hold_no_control_characters(embedder, field, what, value):
    with pytest.raises(GalleryBundleError, match=f"{what} .* holds U\\+00"):
        parse_bundle(bundle_bytes(embedder, **{field: value}))
