"""A deployment end to end, as the issue's "done means" states it: real Mosquitto, a real collector
and two real devices (`edge run`, fresh from their bundles: no gallery yet) watching a camera on
loopback. A deployment of both devices is created with a watchlist of three people from
../shared/data photos; the deliveries the console makes on its own (`deliver_due`) bring both
devices the new gallery; their matches arrive as alerts, and the console shows the matched
person's reference photo beside them; one device is stopped, a person is removed, and the device,
restarted, reports the gallery without them; at the deployment's end both report an empty gallery
and the photos are gone from the database."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the console extra is not installed (pip install -e '.[console]')")

import sqlalchemy as sa  # noqa: E402
from support_wait import wait_until  # noqa: E402
from test_collector import collector_factory, store  # noqa: E402, F401 (fixtures)
from test_console import PASSWORD, browser, log_in_page, served  # noqa: E402, F401 (fixtures)
from test_device_e2e import slideshow, slideshow_jpegs  # noqa: E402, F401 (fixtures)
from test_gallery_live import JOINER, KEPT, REMOVED, passers_by  # noqa: E402, F401 (fixture)
from test_remote_gallery import SITE, Device, camera  # noqa: E402, F401 (fixture)

from edge.central.deployments.delivery import deliver_due  # noqa: E402
from edge.central.deployments.schema import migrate as migrate_deployments  # noqa: E402
from edge.central.deployments.schema import photos  # noqa: E402
from edge.central.deployments.vault import PhotoVault  # noqa: E402
from edge.central.fleet.bundle import issue_device  # noqa: E402
from edge.central.fleet.folder import FleetDir  # noqa: E402
from edge.cli import main  # noqa: E402
from edge.config import load_settings  # noqa: E402
from edge.console import users  # noqa: E402
from edge.console.fleet import FleetAccess  # noqa: E402
from edge.console.schema import migrate as migrate_console  # noqa: E402

LISTED = (KEPT, REMOVED, JOINER)
DEVICES = ("cam-1", "cam-2")


def enrollment_photos(data_dir: Path, slideshow_rows: list[dict[str, str]], identity: str) -> list[Path]:
    """Two photos of `identity` that the camera never shows (the slideshow's are the passers-by)."""
    shown = {r["source_path"] for r in slideshow_rows}
    rows = csv.DictReader(open(data_dir / "identities.csv"))
    found = [data_dir / r["path"] for r in rows if r["identity"] == identity and r["path"] not in shown]
    assert len(found) >= 2, f"{identity} has {len(found)} photos outside the slideshow"
    return found[:2]


def reported(broker_port: int, subscriber_factory, device_id: str):
    """A function giving the device's last retained status (None before one arrived)."""
    topic = f"edge/{SITE}/{device_id}/status"
    sub = subscriber_factory(broker_port, [topic])

    def last() -> dict | None:
        messages = sub.messages(topic)
        return json.loads(messages[-1].payload) if messages else None

    return last


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_deployment_of_two_devices_from_watchlist_to_withdrawal(
    data_dir,
    slideshow,  # noqa: F811
    camera,  # noqa: F811
    broker,
    subscriber_factory,
    collector_factory,  # noqa: F811
    store,  # noqa: F811
    browser,  # noqa: F811
    db_url,
    tmp_path,
):
    engine = store.engine
    migrate_deployments(engine)
    migrate_console(engine)
    assert main(["fleet", "init", str(tmp_path / "fleet")]) == 0
    fleet = FleetDir(tmp_path / "fleet")
    devices = {}
    for device_id in DEVICES:
        home = tmp_path / device_id
        issue_device(fleet, SITE, device_id, home / "certs")
        devices[device_id] = Device(home, broker, camera, home / "gallery" / "gallery.sqlite", False, device_id)
    status = {d: reported(broker.port, subscriber_factory, d) for d in DEVICES}
    collector_factory()
    for device in devices.values():
        device.start()
    base = ["--db", db_url]
    assert main(["deploy", "create", "market-day", *(a for d in DEVICES for a in ("--device", f"{SITE}/{d}")),
                 "--start", "2026-01-01T00:00Z", "--end", "2036-01-01T00:00Z", "--purpose", "find three people",
                 "--authorised-by", "Supt. A. Example", "--fleet", str(fleet.root), *base]) == 0  # fmt: skip
    _, rows = slideshow
    for identity in LISTED:
        pictures = enrollment_photos(data_dir, rows, identity)
        who = ["--name", identity, "--id", identity, "--reason", "missing", "--by", "ada", "--fleet", str(fleet.root)]
        assert main(["deploy", "person", "add", "market-day", *map(str, pictures), *who, *base]) == 0

    vault, settings = PhotoVault.of(fleet), load_settings()

    def deliver() -> list[dict]:
        return deliver_due(engine, vault, fleet, broker.url, settings, by="test")

    def gallery_of(device_id: str) -> str | None:
        last = status[device_id]()
        return None if last is None else last["versions"]["gallery_version"]

    started = deliver()
    assert sorted(d["device"] for d in started) == [f"{SITE}/{d}" for d in DEVICES]
    first = started[0]["gallery_version"]
    for device_id, device in devices.items():
        assert wait_until(lambda d=device_id: gallery_of(d) == first, timeout=120), device.log.read_text()[-3000:]

    # their matches arrive as alerts, each with the matched person's reference photo beside it
    def alerted() -> set[tuple[str, str]]:
        return {(e["device_id"], e["identity_id"]) for e in store.events() if e["gallery_version"] == first}

    wanted = {(d, who) for d in DEVICES for who in (KEPT, REMOVED)}
    assert wait_until(lambda: wanted <= alerted(), timeout=180), alerted()
    users.add(engine, "olga", "operator", [SITE], PASSWORD)
    with served(store, fleet=FleetAccess(fleet, broker.url)) as url:
        page = log_in_page(browser, url, "olga")
        page.goto(f"{url}/alerts")
        row = page.wait_for_selector(f"#alerts tbody tr:has(.identity:has-text('{KEPT}'))")
        photo = row.wait_for_selector("img.reference")
        assert page.evaluate("img => img.complete && img.naturalWidth > 0", photo), "the reference photo did not load"

    # one device stopped; a person removed; the device restarted reports the gallery without them
    devices["cam-2"].stop()
    assert main(["deploy", "person", "remove", "market-day", REMOVED, *base]) == 0
    removed = deliver()
    without = {d["gallery_version"] for d in removed}
    assert len(without) == 1 and first not in without
    (second,) = without
    assert wait_until(lambda: gallery_of("cam-1") == second, timeout=120), devices["cam-1"].log.read_text()[-3000:]
    assert gallery_of("cam-2") == first, "a stopped device changed its gallery"
    devices["cam-2"].start()
    assert wait_until(lambda: gallery_of("cam-2") == second, timeout=120), devices["cam-2"].log.read_text()[-3000:]
    assert not deliver(), "a device that has the latest gallery got it again"

    # the end: both devices report an empty gallery; the photos are gone from the database
    assert main(["deploy", "end", "market-day", *base]) == 0
    ended = deliver()
    assert {d["identities"] for d in ended} == {0} and len(ended) == 2
    (empty,) = {d["gallery_version"] for d in ended}
    for device_id, device in devices.items():
        assert wait_until(lambda d=device_id: gallery_of(d) == empty, timeout=120), device.log.read_text()[-3000:]
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(photos)).scalar_one() == 0
    for device in devices.values():
        assert device.stop() == 0
