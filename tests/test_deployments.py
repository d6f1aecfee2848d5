"""Deployments and watchlists on a real database (SQLite and PostgreSQL): the rules a deployment
keeps, people added through the real quality gate and the device's stills pipeline, photos and
templates sealed at rest, and everything withdrawn at the end."""

from __future__ import annotations

import csv
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest
import sqlalchemy as sa

from postgres_server import pg_bin

pytest.importorskip("sqlalchemy", reason="the central extra is not installed")

from edge.central.deployments import watchlist  # noqa: E402
from edge.central.deployments.gallery import watchlist_bundle  # noqa: E402
from edge.central.deployments.schema import migrate, photos  # noqa: E402
from edge.central.deployments.vault import KEY_FILE, PhotoVault, VaultError  # noqa: E402
from edge.central.deployments.watchlist import DeploymentError, DeploymentSpec  # noqa: E402
from edge.central.fleet.bundle import issue_device  # noqa: E402
from edge.central.fleet.folder import FleetDir  # noqa: E402
from edge.central.trial.store import TrialStore  # noqa: E402
from edge.cli import main  # noqa: E402
from edge.config import load_settings  # noqa: E402
from edge.device.parts import configured_embedder, load_cohort  # noqa: E402
from edge.enrollment import Person  # noqa: E402
from edge.gallery import GalleryStore, replace_gallery  # noqa: E402
from edge.vision import load_image  # noqa: E402

START = datetime.now(timezone.utc) - timedelta(hours=1)
END = START + timedelta(days=1)


@pytest.fixture
def fleet(tmp_path) -> FleetDir:
    folder = tmp_path / "fleet"
    assert main(["fleet", "init", str(folder)]) == 0
    fleet = FleetDir(folder)
    for device in ("cam-1", "cam-2"):
        issue_device(fleet, "north", device, tmp_path / "certs" / device)
    return fleet


@pytest.fixture
def store(db_url: str) -> Iterator[TrialStore]:
    with TrialStore.open(db_url, also=(migrate,)) as opened:
        yield opened


def spec(name: str = "market-day", devices: tuple[str, ...] = ("north/cam-1",), **changes) -> DeploymentSpec:
    values = {
        "name": name,
        "devices": devices,
        "starts_at": START,
        "ends_at": END,
        "purpose": "find two missing people at the market",
        "authorised_by": "Supt. A. Example",
        "created_by": "ada",
    }
    return DeploymentSpec(**{**values, **changes})


@pytest.fixture
def photos_of(data_dir) -> dict[str, list[Path]]:
    """Each DEV identity's photos, from ../shared/data/identities.csv."""
    found: dict[str, list[Path]] = {}
    for row in csv.DictReader(open(data_dir / "identities.csv")):
        found.setdefault(row["identity"], []).append(data_dir / row["path"])
    return found


def test_a_deployment_states_its_purpose_period_and_devices_and_a_device_serves_one_at_a_time(store, fleet):
    engine = store.engine
    for changes, why in (
        ({"purpose": " "}, "purpose"),
        ({"ends_at": START}, "before it starts"),
        ({"devices": ("north/cam-9",)}, "was not provisioned"),
        ({"devices": ()}, "at least one device"),
        ({"name": "no spaces"}, "deployment name"),
        ({"target_fmr": 2.0}, "between 0 and 1"),
    ):
        with pytest.raises(Exception, match=why):
            watchlist.create(engine, spec(**changes), fleet)
    watchlist.create(engine, spec(), fleet)
    with pytest.raises(DeploymentError, match="already serve deployment 'market-day'"):
        watchlist.create(engine, spec("overlap", ("north/cam-1", "north/cam-2")), fleet)
    watchlist.create(engine, spec("later", starts_at=END, ends_at=END + timedelta(days=1)), fleet)  # no overlap
    watchlist.end(engine, "market-day")
    watchlist.create(
        engine, spec("after-the-end", ("north/cam-1",), starts_at=START, ends_at=END - timedelta(hours=1)), fleet
    )
    states = {d["name"]: d["state"] for d in watchlist.summary(engine)}
    assert states == {"market-day": "ended", "later": "scheduled", "after-the-end": "running"}


def test_people_pass_the_quality_gate_and_are_sealed_at_rest(store, fleet, photos_of, stills_vision, db_url, tmp_path):
    engine = store.engine
    watchlist.create(engine, spec(), fleet)
    vault = PhotoVault.of(fleet, create=True)
    assert (fleet.root / KEY_FILE).stat().st_mode & 0o777 == 0o600
    name, pictures = next((n, p) for n, p in sorted(photos_of.items()) if len(p) >= 3)
    blank = tmp_path / "blank.jpg"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    added = watchlist.add_person(
        engine, vault, stills_vision, "market-day", Person(name, (*pictures[:2], blank)), "missing since Monday", "ada"
    )
    assert len(added.accepted) == 2 and [p for p, _ in added.refused] == ["blank.jpg"]
    assert "face" in added.refused[0][1]
    with pytest.raises(DeploymentError, match="outlast"):
        watchlist.add_person(
            engine, vault, stills_vision, "market-day", Person("Other", pictures[2:3]), "r", "ada", END + timedelta(1)
        )
    listed = watchlist.templates(engine, vault, "market-day")
    assert [(p.name, t.shape) for p, t in listed] == [(name, (2, 128))]
    expected = stills_vision.describe_single(load_image(pictures[0]), "x").embedded()
    assert min(np.linalg.norm(t - expected) for t in listed[0][1]) < 1e-3, "not the device's own descriptor"
    assert watchlist.photo(engine, vault, "market-day", added.identity_id) in {p.read_bytes() for p in pictures[:2]}
    with engine.connect() as connection:
        stored = [
            bytes(b) for row in connection.execute(sa.select(photos)) for b in (row.sealed_photo, row.sealed_template)
        ]
    # pieces of each photo file (its header, and 64 bytes from its middle): none may be found stored
    pieces = [p.read_bytes() for p in pictures[:2]]
    pieces = [piece for data in pieces for piece in (data[:64], data[len(data) // 2 : len(data) // 2 + 64])]
    assert len(stored) == 4 and not any(piece in blob for blob in stored for piece in pieces)
    if db_url.startswith("sqlite"):
        file_bytes = Path(db_url.removeprefix("sqlite:///")).read_bytes()
        assert not any(piece in file_bytes for piece in pieces)
    dump = database_dump(db_url).upper()
    assert stored[0].hex().upper() in dump, "the dump does not hold the sealed photos: it proves nothing"
    assert not any(piece.hex().upper() in dump for piece in pieces)
    other = tmp_path / "other-fleet"
    other.mkdir()
    wrong = PhotoVault.of(FleetDir(other), create=True)
    with pytest.raises(VaultError, match="does not open market-day"):
        watchlist.photo(engine, wrong, "market-day", added.identity_id)


def database_dump(db_url: str) -> str:
    """The whole database as SQL text, as a backup would hold it (binary values as hex): Python's
    sqlite3 `iterdump`, or PostgreSQL's own `pg_dump`."""
    if db_url.startswith("sqlite"):
        with closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as connection:
            return "\n".join(connection.iterdump())
    bin_dir = pg_bin()
    assert bin_dir is not None
    dumped = subprocess.run([str(bin_dir / "pg_dump"), "--dbname", db_url], capture_output=True, text=True, check=True)
    return dumped.stdout


def test_removal_and_the_end_withdraw_the_list_and_delete_the_photos(store, fleet, photos_of, stills_vision):
    engine = store.engine
    watchlist.create(engine, spec(), fleet)
    vault = PhotoVault.of(fleet, create=True)
    names = [n for n, p in sorted(photos_of.items()) if len(p) >= 2][:3]
    for name in names:
        watchlist.add_person(
            engine, vault, stills_vision, "market-day", Person(name, tuple(photos_of[name][:2])), "r", "ada"
        )
    first = watchlist.listed_people(engine, "market-day")[0]
    watchlist.remove_person(engine, "market-day", first.identity_id)
    assert len(watchlist.listed_people(engine, "market-day")) == 2
    assert watchlist.photo(engine, vault, "market-day", first.identity_id) is None
    watchlist.end(engine, "market-day")
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(photos)).scalar_one() == 0
    with pytest.raises(DeploymentError, match="has ended"):
        watchlist.add_person(
            engine, vault, stills_vision, "market-day", Person(names[0], tuple(photos_of[names[0]][:1])), "r", "ada"
        )


def test_the_cli_creates_lists_and_refuses_in_one_line(db_url, fleet, capsys):
    base = ["--db", db_url]
    period = ["--start", START.isoformat(), "--end", END.isoformat()]
    stated = ["--purpose", "p", "--authorised-by", "a", "--fleet", str(fleet.root)]
    assert main(["deploy", "create", "market-day", "--device", "north/cam-1", *period, *stated, *base]) == 0
    assert main(["deploy", "list", *base]) == 0
    assert '"name": "market-day"' in capsys.readouterr().out
    assert main(["deploy", "end", "nothing", *base]) == 1
    assert "no deployment 'nothing'" in capsys.readouterr().err


def test_the_watchlist_bundle_is_the_listed_people_as_a_device_matches_them(
    store, fleet, photos_of, stills_vision, tmp_path
):
    engine = store.engine
    watchlist.create(engine, spec(), fleet)
    vault = PhotoVault.of(fleet, create=True)
    names = [n for n, p in sorted(photos_of.items()) if len(p) >= 3][:2]
    for name in names:
        person = Person(name, tuple(photos_of[name][:2]))
        watchlist.add_person(engine, vault, stills_vision, "market-day", person, "r", "ada")
    settings = load_settings()
    bundle = watchlist_bundle(engine, vault, "market-day", settings)
    assert sorted(r.name for r in bundle.identities) == sorted(names)
    entry = configured_embedder(settings)
    cohort = load_cohort(settings, entry.model_id)
    device_gallery = tmp_path / "device.sqlite"
    replace_gallery(device_gallery, bundle, entry.model_id, entry.sha256, scaler=cohort)  # as a device takes it
    with GalleryStore.open(device_gallery, entry.model_id, entry.sha256, scaler=cohort) as gallery:
        matcher = gallery.matcher(per_template=True)
    for name in names:  # a third photo of each listed person, not enrolled: nearest to their own templates
        probe = stills_vision.describe_single(load_image(photos_of[name][2]), "probe").embedded()
        nearest = matcher.nearest(probe)
        assert nearest is not None and nearest.identity_id == Person(name, ()).id
    watchlist.remove_person(engine, "market-day", Person(names[0], ()).id)
    assert [r.name for r in watchlist_bundle(engine, vault, "market-day", settings).identities] == [names[1]]
    watchlist.end(engine, "market-day")
    assert len(watchlist_bundle(engine, vault, "market-day", settings).identities) == 0
