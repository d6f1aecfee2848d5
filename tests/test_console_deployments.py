"""Deployments in the console and their delivery: an admin creates one and lists a person from
real photos in headless Chromium (a refused photo shows its reason); other sites' users neither
see it nor fetch its photos; `deliver_due` (what the console runs by itself) sends a real
running device its gallery at the start and after a removal, the devices table shows what the
device reports, and a device offline at the end is flagged as still carrying the withdrawn list."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

pytest.importorskip("fastapi", reason="the console extra is not installed (pip install -e '.[console]')")

import sqlalchemy as sa  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from support_wait import wait_until  # noqa: E402
from test_console import PASSWORD, browser, log_in_page, logged_in, served  # noqa: E402, F401 (fixtures)
from test_deployments import photos_of  # noqa: E402, F401 (fixture)
from test_device_e2e import gallery, slideshow, slideshow_jpegs  # noqa: E402, F401 (fixtures)
from test_gallery_live import passers_by  # noqa: E402, F401
from test_remote_gallery import DEVICE, SITE, camera, central_port, device, fleet, make_device  # noqa: E402, F401

from edge.central.deployments import watchlist  # noqa: E402
from edge.central.deployments.delivery import deliver_due, reported  # noqa: E402
from edge.central.deployments.schema import deliveries  # noqa: E402
from edge.central.deployments.vault import PhotoVault  # noqa: E402
from edge.central.deployments.watchlist import DeploymentSpec  # noqa: E402
from edge.central.trial.store import TrialStore  # noqa: E402
from edge.config import load_settings  # noqa: E402
from edge.console import audit, users  # noqa: E402
from edge.console.app import create_app  # noqa: E402
from edge.console.delivery import Deliveries  # noqa: E402
from edge.console.fleet import FleetAccess  # noqa: E402
from edge.console.schema import open_database  # noqa: E402
from edge.enrollment import Person  # noqa: E402

CAMERA = f"{SITE}/{DEVICE}"
NOW = datetime.now(timezone.utc)


@pytest.fixture
def store(db_url: str) -> Iterator[TrialStore]:
    """The console's database: an admin, an operator and a viewer of the device's site, and an
    operator of another site."""
    with open_database(db_url) as opened:
        users.add(opened.engine, "ada", "admin", [], PASSWORD)
        users.add(opened.engine, "olga", "operator", [SITE], PASSWORD)
        users.add(opened.engine, "vic", "viewer", [SITE], PASSWORD)
        users.add(opened.engine, "otto", "operator", ["elsewhere"], PASSWORD)
        yield opened


def listed(photos_of, count: int) -> list[str]:  # noqa: F811
    return [name for name, found in sorted(photos_of.items()) if len(found) >= 3][:count]


def create(store: TrialStore, fleet, name: str = "market-day", starts_at: datetime | None = None) -> None:  # noqa: F811
    starts_at = starts_at or NOW - timedelta(hours=1)
    spec = DeploymentSpec(name, (CAMERA,), starts_at, starts_at + timedelta(days=1), "a test", "the suite", "ada")
    watchlist.create(store.engine, spec, fleet)


def add(store: TrialStore, fleet, stills_vision, name: str, photos: list, deployment: str = "market-day") -> None:  # noqa: F811
    vault = PhotoVault.of(fleet, create=True)
    added = watchlist.add_person(
        store.engine, vault, stills_vision, deployment, Person(name, tuple(photos)), "r", "ada"
    )
    assert added.accepted, added.refused


def delivered(store: TrialStore) -> list[tuple[str, int, str]]:
    query = sa.select(deliveries.c.deployment, deliveries.c.people, deliveries.c.reason).order_by(deliveries.c.id)
    with store.engine.connect() as connection:
        return [tuple(r) for r in connection.execute(query)]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_admin_creates_a_deployment_and_lists_a_person_from_photos_in_the_browser(
    store,
    fleet,  # noqa: F811
    broker,
    browser,  # noqa: F811
    photos_of,  # noqa: F811
    data_dir,
):
    access = FleetAccess(fleet, broker.url)
    deliveries_ = Deliveries(store.engine, access, load_settings(), every_s=0)
    (name,) = listed(photos_of, 1)
    group = data_dir / "face_recognition" / "examples" / "two_people.jpg"
    with served(store, fleet=access, deliveries=deliveries_) as url:
        page = log_in_page(browser, url, "ada")
        page.goto(f"{url}/deployments")
        form = "form.deployment"
        page.fill(f"{form} input[name=name]", "market-day")
        page.fill(f"{form} textarea[name=devices]", CAMERA)
        page.fill(f"{form} input[name=starts_at]", (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
        page.fill(f"{form} input[name=ends_at]", (NOW + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"))
        page.fill(f"{form} textarea[name=purpose]", "find a missing person at the market")
        page.fill(f"{form} input[name=authorised_by]", "Supt. A. Example")
        page.click(f"{form} button[type=submit]")
        assert page.wait_for_selector("#state").inner_text() == "running"
        # the start is delivered at once (the empty list), before anyone is added
        assert wait_until(lambda: delivered(store) == [("market-day", 0, "start")], timeout=30), delivered(store)
        page.fill("form.person input[name=person_name]", name)
        page.fill("form.person textarea[name=reason]", "missing since Monday")
        page.set_input_files("form.person input[name=photo]", [str(p) for p in photos_of[name][:2]] + [str(group)])
        page.click("form.person button[type=submit]")
        assert "Added with 2 photo(s)" in page.wait_for_selector("#outcome").inner_text()
        refused = page.inner_text("#photos tr.refused")
        assert "two_people.jpg" in refused and "refused:" in refused and "face" in refused, refused
        page.goto(f"{url}/deployments/market-day")
        row = page.wait_for_selector("#watchlist tbody tr")
        assert row.query_selector(".name").inner_text() == name and row.query_selector(".photos").inner_text() == "2"
        assert page.wait_for_function("document.querySelector('img.reference').naturalWidth > 0")
        expected = [("market-day", 0, "start"), ("market-day", 1, "person added")]
        assert wait_until(lambda: delivered(store) == expected, timeout=30), delivered(store)
        page.goto(f"{url}/deployments")
        assert page.inner_text("#deployments tr[data-name=market-day] .size") == "1"
    done = [
        (e["action"], e["outcome"]) for e in audit.entries(store.engine) if e["action"].startswith(("deploy", "watch"))
    ]
    assert sorted(done) == [("deployment_create", "ok"), ("watchlist_add", "ok")]


def test_other_sites_neither_see_a_deployment_nor_fetch_its_photos(
    store,
    fleet,  # noqa: F811
    photos_of,  # noqa: F811
    stills_vision,
):
    create(store, fleet)
    (name,) = listed(photos_of, 1)
    add(store, fleet, stills_vision, name, photos_of[name][:2])
    identity = watchlist.listed_people(store.engine, "market-day")[0].identity_id
    photo_url = f"/deployments/market-day/people/{identity}/photo"
    access = FleetAccess(fleet, "mqtt://127.0.0.1:9")  # no broker: the devices table says so in one line
    app = create_app(store, fleet=access, deliveries=Deliveries(store.engine, access, load_settings(), every_s=0))
    otto, vic, olga, ada = (TestClient(app) for _ in range(4))  # no lifespan: no delivery task here
    logged_in(otto, "otto")
    assert "market-day" not in otto.get("/deployments").text
    assert otto.get("/deployments/market-day").status_code == 403
    assert otto.get(photo_url).status_code == 403
    logged_in(vic, "vic")  # a viewer of the site: the deployment, read-only, and no photo
    page = vic.get("/deployments/market-day")
    assert page.status_code == 200 and name in page.text
    assert 'img class="reference"' not in page.text and "/remove" not in page.text
    assert vic.get(photo_url).status_code == 403
    as_json = vic.get("/deployments/market-day/report.json")  # the deployment's report, to whoever sees it
    assert (
        as_json.status_code == 200
        and "market-day" in as_json.text
        and "attachment" in as_json.headers["content-disposition"]
    )
    as_html = vic.get("/deployments/market-day/report.html")
    assert as_html.status_code == 200 and "sandbox" in as_html.headers["content-security-policy"]
    assert otto.get("/deployments/market-day/report.md").status_code == 403
    assert vic.get("/deployments/market-day/report.exe").status_code == 404
    olga_csrf = logged_in(olga, "olga")
    assert 'img class="reference"' in olga.get("/deployments/market-day").text
    photo = olga.get(photo_url)
    assert photo.status_code == 200 and photo.headers["cache-control"] == "no-store"
    assert photo.content in {p.read_bytes() for p in photos_of[name][:2]}
    assert photo.headers["content-type"] == "image/jpeg"
    removal = f"/deployments/market-day/people/{identity}/remove"
    assert olga.post(removal, data={"csrf": olga_csrf}).status_code == 403  # operators do not change lists
    ada_csrf = logged_in(ada, "ada")
    assert ada.post(removal, data={"csrf": "wrong"}).status_code == 403
    assert ada.get("/deployments/nowhere").status_code == 404
    bad = ada.post("/deployments", data={"csrf": ada_csrf, "name": "x", "starts_at": "soon"})
    assert bad.status_code == 400 and "is not a time" in bad.text
    refused = [(e["actor"], e["action"]) for e in audit.entries(store.engine) if e["outcome"] == "refused"]
    assert ("otto", "read_report") in refused
    assert ("otto", "read_deployment") in refused and ("otto", "read_photo") in refused
    assert ("vic", "read_photo") in refused and ("olga", "watchlist_remove") in refused
    assert watchlist.listed_people(store.engine, "market-day"), "a refused removal removed someone"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_device_that_changes_deployment_gets_the_new_one_only_and_an_ended_list_is_withdrawn_once(
    store,
    fleet,  # noqa: F811
    broker,
    photos_of,  # noqa: F811
    stills_vision,
):
    """No device runs: the galleries are retained for it. The withdrawal of a deployment that
    ended never replaces the gallery of the one that serves the device now."""
    engine, vault, settings = store.engine, PhotoVault.of(fleet, create=True), load_settings()
    first, second = listed(photos_of, 2)
    create(store, fleet, "early", NOW - timedelta(hours=3))
    add(store, fleet, stills_vision, first, photos_of[first][:2], "early")

    def due() -> list[tuple[str, str, int]]:
        sent = deliver_due(engine, vault, fleet, broker.url, settings)
        return [(s["deployment"], s["reason"], s["identities"]) for s in sent]

    assert due() == [("early", "start", 1)]
    assert due() == []
    watchlist.end(engine, "early")
    create(store, fleet, "late", NOW - timedelta(minutes=1))  # the same device, once the first has ended
    add(store, fleet, stills_vision, second, photos_of[second][:2], "late")
    assert due() == [("late", "start", 1)]
    assert due() == []
    later = watchlist.listed_people(engine, "late")[0]
    watchlist.remove_person(engine, "late", later.identity_id)
    assert due() == [("late", "person removed", 0)]
    row = reported(engine, [{"device": CAMERA, "state": "offline", "gallery_version": "something else"}])[CAMERA]
    assert row["deployment"] == "late" and row["delivered_people"] == 0 and not row["in_step"]


def test_a_running_device_gets_its_gallery_at_the_start_and_after_a_removal_and_one_offline_at_the_end_is_flagged(
    device,  # noqa: F811
    fleet,  # noqa: F811
    store,
    photos_of,  # noqa: F811
    stills_vision,
    subscriber_factory,
    db_url,
):
    engine, vault, settings = store.engine, PhotoVault.of(fleet, create=True), load_settings()
    create(store, fleet)
    for name in listed(photos_of, 2):
        add(store, fleet, stills_vision, name, photos_of[name][:2])
    sub = subscriber_factory(device.broker.port, [f"edge/{CAMERA}/stats"])
    device.start()
    assert wait_until(lambda: sub.messages(f"edge/{CAMERA}/stats"), timeout=90), device.log.read_text()[-3000:]
    access = FleetAccess(fleet, device.broker.url)
    olga = users.get(engine, "olga")
    assert olga is not None

    def deliver() -> dict:
        (sent,) = deliver_due(engine, vault, fleet, device.broker.url, settings)
        return sent

    def shown() -> dict:
        return reported(engine, access.devices(olga))[CAMERA]

    def table() -> str:
        app = create_app(store, fleet=access, deliveries=Deliveries(engine, access, settings, every_s=0))
        with TestClient(app) as client:
            logged_in(client, "olga")
            page = client.get("/deployments/market-day")
        assert page.status_code == 200
        return page.text.split('id="devices"')[1].split("</table>")[0]

    start = deliver()
    assert (start["reason"], start["identities"]) == ("start", 2)
    assert deliver_due(engine, vault, fleet, device.broker.url, settings) == []  # nothing due twice
    assert wait_until(lambda: shown()["in_step"], timeout=90), device.log.read_text()[-3000:]
    watchlist.remove_person(engine, "market-day", watchlist.listed_people(engine, "market-day")[0].identity_id)
    removal = deliver()
    assert (removal["reason"], removal["identities"]) == ("person removed", 1)
    in_use = lambda: shown()["reported_version"] == removal["gallery_version"]  # noqa: E731
    assert wait_until(in_use, timeout=90), device.log.read_text()[-3000:]
    assert removal["gallery_version"] in table() and "in step" in table()

    device.stop()  # offline at the end: its retained status still names the list it carries
    watchlist.end(engine, "market-day")
    end = deliver()
    assert (end["reason"], end["identities"]) == ("end", 0)
    flagged = shown()
    assert flagged["withdrawn"] and flagged["state"] == "offline", flagged
    assert flagged["reported_version"] == removal["gallery_version"] != flagged["delivered_version"]
    assert "withdrawn gallery of market-day" in table()

    device.start()  # the broker hands it the retained empty gallery
    assert wait_until(lambda: shown()["in_step"] and not shown()["withdrawn"], timeout=90), device.log.read_text()[
        -3000:
    ]
    assert deliver_due(engine, vault, fleet, device.broker.url, settings) == []  # fully withdrawn
    assert shown()["delivered_people"] == 0


def test_the_console_refuses_a_negative_delivery_interval_in_one_line(tmp_path, capsys):
    from edge.cli import main

    db = f"sqlite:///{tmp_path / 'trial.db'}"
    assert main(["console", "serve", "--db", db, "--deliver-every", "-1", "--listen", "127.0.0.1:1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--deliver-every -1" in err[0], err


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_console_delivers_by_itself_and_a_broker_away_is_retried_at_the_next_round(
    store,
    fleet,  # noqa: F811
    broker,
    photos_of,  # noqa: F811
    stills_vision,
    caplog,
):
    """A deployment made outside the console (`edge deploy`) reaches its device on the console's
    own rounds; a round that cannot reach the broker records nothing and says so in one line."""
    engine, vault, settings = store.engine, PhotoVault.of(fleet, create=True), load_settings()
    create(store, fleet)
    (name,) = listed(photos_of, 1)
    add(store, fleet, stills_vision, name, photos_of[name][:2])
    (failed,) = deliver_due(engine, vault, fleet, "mqtt://127.0.0.1:9", settings)  # nothing listens there
    assert failed["device"] == CAMERA and failed["reason"] == "start" and failed["error"]
    warned = [r.getMessage() for r in caplog.records if "not delivered" in r.getMessage()]
    assert len(warned) == 1 and "\n" not in warned[0] and "next round retries" in warned[0]
    assert delivered(store) == []
    access = FleetAccess(fleet, broker.url)
    with served(store, fleet=access, deliveries=Deliveries(engine, access, settings, every_s=0.2)):
        assert wait_until(lambda: delivered(store) == [("market-day", 1, "start")], timeout=30), delivered(store)
        watchlist.end(engine, "market-day")  # by the CLI: the console's next round withdraws it
        expected = [("market-day", 1, "start"), ("market-day", 0, "end")]
        assert wait_until(lambda: delivered(store) == expected, timeout=30), delivered(store)
