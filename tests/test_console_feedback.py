"""Beside an alert, the template that matched (issue 21 items 4 and 5, console side): the enrolled
person's reference photo, for the operators of the deployment's site only, in a real browser on a
real deployment (people added through the quality gate, photos sealed); negative feedback on an
alert judged false, tightened and reverted by an admin; and the console's daily purge.

Alerts are stored as the collector stores them (the trial store's intake)."""

from __future__ import annotations

import asyncio
import csv
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the console extra is not installed (pip install -e '.[console]')")

from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from support_wait import wait_until  # noqa: E402
from test_console import PASSWORD, browser, log_in_page, logged_in, served  # noqa: E402, F401 (fixtures)

from edge.central.deployments import watchlist  # noqa: E402
from edge.central.deployments.schema import adjustments, figures, people, photos  # noqa: E402
from edge.central.deployments.schema import migrate as deployments_migrate  # noqa: E402
from edge.central.deployments.vault import PhotoVault  # noqa: E402
from edge.central.deployments.watchlist import DeploymentSpec  # noqa: E402
from edge.central.fleet.bundle import issue_device  # noqa: E402
from edge.central.fleet.folder import FleetDir  # noqa: E402
from edge.central.trial.schema import events  # noqa: E402
from edge.central.trial.store import TrialStore  # noqa: E402
from edge.cli import main  # noqa: E402
from edge.config import load_settings  # noqa: E402
from edge.console import audit, users  # noqa: E402
from edge.console.app import create_app  # noqa: E402
from edge.console.delivery import Deliveries  # noqa: E402
from edge.console.fleet import FleetAccess  # noqa: E402
from edge.console.purging import DailyPurge  # noqa: E402
from edge.console.schema import migrate as console_migrate  # noqa: E402
from edge.console.schema import open_database  # noqa: E402
from edge.device.parts import configured_embedder, load_cohort  # noqa: E402
from edge.enrollment import Person  # noqa: E402
from edge.link.payloads import MatchEvent, utc_now  # noqa: E402

START = datetime.now(timezone.utc) - timedelta(hours=1)
END = START + timedelta(days=1)
DEPLOYMENT = "market-day"
UNUSED_BROKER = "mqtts://127.0.0.1:9"  # pages here never reach the broker
KNOB = 0.5  # the threshold knob the alerts here were raised at


@pytest.fixture
def fleet(tmp_path: Path) -> FleetDir:
    folder = tmp_path / "fleet"
    assert main(["fleet", "init", str(folder)]) == 0
    fleet = FleetDir(folder)
    for device in ("cam-1", "cam-2"):
        issue_device(fleet, "north", device, tmp_path / "certs" / device)
    return fleet


@pytest.fixture
def store(db_url: str) -> Iterator[TrialStore]:
    with open_database(db_url) as opened:
        users.add(opened.engine, "ada", "admin", [], PASSWORD)
        users.add(opened.engine, "olga", "operator", ["north"], PASSWORD)
        users.add(opened.engine, "sam", "operator", ["south"], PASSWORD)
        users.add(opened.engine, "vic", "viewer", ["north"], PASSWORD)
        yield opened


@pytest.fixture
def listed(store: TrialStore, fleet: FleetDir, data_dir: Path, stills_vision) -> tuple[str, bytes]:
    """A running deployment on north/cam-1 with one person (two photos, sealed): their id and best photo."""
    found: dict[str, list[Path]] = {}
    for row in csv.DictReader(open(data_dir / "identities.csv")):
        found.setdefault(row["identity"], []).append(data_dir / row["path"])
    name, pictures = next((n, p) for n, p in sorted(found.items()) if len(p) >= 3)
    spec = DeploymentSpec(DEPLOYMENT, ("north/cam-1",), START, END, "find a missing person", "Supt. Example", "ada")
    watchlist.create(store.engine, spec, fleet)
    vault = PhotoVault.of(fleet, create=True)
    added = watchlist.add_person(
        store.engine, vault, stills_vision, DEPLOYMENT, Person(name, tuple(pictures[:2])), "missing", "ada"
    )
    assert added.accepted, added.refused
    best = watchlist.photo(store.engine, vault, DEPLOYMENT, added.identity_id)
    assert best is not None
    return added.identity_id, best


def match(identity: str, device: str = "cam-1", site: str = "north", **changes) -> MatchEvent:
    values = {
        "event_id": uuid.uuid4().hex,
        "ts": utc_now(),
        "device_id": device,
        "site": site,
        "track_id": 1,
        "identity_id": identity,
        "score": 0.41,
        "threshold": 0.5,
        "template_threshold": 0.44,
        "metric": "euclidean",
        "model_id": "dlib_resnet_v1_int8_mirror",
        "gallery_version": "g1",
        "window_id": f"{device}.boot1-000001",
    }
    return MatchEvent(**{**values, **changes})


def audited(store: TrialStore, action: str) -> list[tuple[str | None, str, str | None]]:
    return [(e["actor"], e["outcome"], e["target"]) for e in audit.entries(store.engine) if e["action"] == action]


def test_the_reference_photo_is_served_to_the_sites_operators_only(store, fleet, listed) -> None:
    identity, best = listed
    inside, outside = match(identity), match(identity, device="cam-2")  # cam-2 serves no deployment
    store.add_many([inside, outside])
    with TestClient(create_app(store, fleet=FleetAccess(fleet, UNUSED_BROKER))) as client:
        logged_in(client, "olga")
        got = client.get(f"/alerts/{inside.event_id}/reference")
        assert got.status_code == 200 and got.content == best
        assert got.headers["content-type"] == "image/jpeg" and got.headers["cache-control"] == "no-store"
        assert client.get(f"/alerts/{outside.event_id}/reference").status_code == 404
        assert client.get(f"/alerts/{uuid.uuid4().hex}/reference").status_code == 404
    for other in ("sam", "vic"):
        with TestClient(create_app(store, fleet=FleetAccess(fleet, UNUSED_BROKER))) as client:
            logged_in(client, other)
            refused = client.get(f"/alerts/{inside.event_id}/reference")
            assert refused.status_code == 403 and best not in refused.content
    with TestClient(create_app(store)) as client:  # without --fleet: no photo key
        logged_in(client, "ada")
        assert "no photo key" in client.get(f"/alerts/{inside.event_id}/reference").text
    assert audited(store, "view_reference_photo") == [
        ("ada", "failed", inside.event_id),
        ("vic", "refused", inside.event_id),
        ("sam", "refused", inside.event_id),
        ("olga", "ok", inside.event_id),
    ]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_in_the_browser_the_sites_operator_sees_the_photo_and_others_do_not(
    store,
    fleet,
    listed,
    browser,  # noqa: F811 (the fixture imported above)
) -> None:
    identity, _ = listed
    inside, outside = match(identity), match(identity, device="cam-2")
    store.add_many([inside, outside])
    with served(store, fleet=FleetAccess(fleet, UNUSED_BROKER)) as url:
        page = log_in_page(browser, url, "olga")
        page.wait_for_selector("#connection[data-state=live]")
        photo = page.wait_for_selector(f"#alert-{inside.event_id} img.reference")
        assert wait_until(lambda: photo.evaluate("img => img.complete && img.naturalWidth > 0"))
        assert page.inner_text(f"#alert-{outside.event_id} .photo") == "no reference photo"
        live = match(identity)
        store.add_many([live])  # arrives by the stream, no reload
        photo = page.wait_for_selector(f"#alert-{live.event_id} img.reference")
        assert wait_until(lambda: photo.evaluate("img => img.complete && img.naturalWidth > 0"))
        viewer = log_in_page(browser, url, "vic")
        viewer.wait_for_selector(f"#alert-{inside.event_id}")
        assert viewer.query_selector_all("img.reference") == []
        assert viewer.goto(f"{url}/alerts/{inside.event_id}/reference").status == 403
        other = log_in_page(browser, url, "sam")
        other.wait_for_selector("#connection[data-state=live]")
        assert other.query_selector(f"#alert-{inside.event_id}") is None
        assert other.goto(f"{url}/alerts/{inside.event_id}/reference").status == 403
        watchlist.end(store.engine, DEPLOYMENT)  # retention 0 days: the photos go at once
        page.reload()
        assert page.inner_text(f"#alert-{inside.event_id} .photo") == "no reference photo"
        assert page.goto(f"{url}/alerts/{inside.event_id}/reference").status == 404
    with store.engine.connect() as connection:
        assert connection.execute(photos.select()).first() is None
        assert connection.execute(people.select()).first() is not None


def test_the_console_purges_what_is_due_as_it_starts_and_audits_it(store, fleet, listed) -> None:
    identity, _ = listed
    during = match(identity, ts=START + timedelta(minutes=5))
    store.add_many([during])
    watchlist.end(store.engine, DEPLOYMENT, at=START + timedelta(minutes=30))  # retention 0 days: due now
    with TestClient(create_app(store)):
        assert wait_until(lambda: audited(store, "purge") == [("console", "ok", DEPLOYMENT)])
    with store.engine.connect() as connection:
        assert connection.execute(events.select().where(events.c.event_id == during.event_id)).first() is None
        assert connection.execute(figures.select()).first().deployment == DEPLOYMENT
    with TestClient(create_app(store)):  # started again: nothing more is due, the run says so
        assert wait_until(lambda: len(audited(store, "purge")) == 2)
    assert audited(store, "purge") == [("console", "ok", None), ("console", "ok", DEPLOYMENT)]


def test_a_failed_purge_is_logged_in_one_line_audited_and_tried_again(tmp_path, caplog) -> None:
    url = f"sqlite:///{tmp_path / 'console.db'}"
    with TrialStore.open(url, also=(console_migrate,)) as bare:  # the deployment tables are missing
        purge = DailyPurge(bare.engine, every_s=0.05)

        async def first_runs() -> None:
            purge.start()
            await asyncio.to_thread(wait_until, lambda: bool(audited(bare, "purge")))
            deployments_migrate(bare.engine)  # what the next run needs
            await asyncio.to_thread(wait_until, lambda: ("console", "ok", None) in audited(bare, "purge"))
            await purge.stop()

        asyncio.run(first_runs())
        failed = [r.getMessage() for r in caplog.records if "daily purge failed" in r.getMessage()]
        assert failed and "\n" not in failed[0] and "deployments" in failed[0]
        assert audited(bare, "purge")[-1][:2] == ("console", "failed")


@pytest.fixture
def false_alert(store: TrialStore, fleet: FleetDir, listed) -> MatchEvent:
    """An alert on the listed person's first template, at a distance inside its threshold, that
    the site's operator adjudicated false."""
    identity, _ = listed
    cohort = load_cohort(load_settings(), configured_embedder(load_settings()).model_id)
    ((person, ids, descriptors),) = watchlist.templates_with_ids(store.engine, PhotoVault.of(fleet), DEPLOYMENT)
    limit = round(KNOB * float(cohort.scales(descriptors[:1])[0]), 4)
    event = match(identity, template_id=ids[0], threshold=KNOB, template_threshold=limit, score=limit - 0.02)
    store.add_many([event])
    store.add_verdict(event.event_id, "false_alert", "olga", "not the listed person")
    return event


def deliveries_for(store: TrialStore, fleet: FleetDir) -> Deliveries:
    """The console's delivery task, run only after changes (no broker here: its rounds fail in one
    logged line; delivery itself is tested with devices in tests/test_console_deployments.py)."""
    return Deliveries(store.engine, FleetAccess(fleet, UNUSED_BROKER), load_settings(), every_s=0)


def console(store: TrialStore, fleet: FleetDir) -> FastAPI:
    return create_app(store, fleet=FleetAccess(fleet, UNUSED_BROKER), deliveries=deliveries_for(store, fleet))


def adjustment_rows(store: TrialStore) -> list[tuple[str, str, str | None, str | None]]:
    with store.engine.connect() as connection:
        rows = connection.execute(adjustments.select().order_by(adjustments.c.id))
        return [(r.kind, r.made_by, r.event_id, r.reverted_by) for r in rows]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_in_the_browser_an_admin_tightens_the_template_of_a_false_alert_and_reverts_it(
    store,
    fleet,
    listed,
    false_alert,
    browser,  # noqa: F811 (the fixture imported above)
) -> None:
    with served(store, fleet=FleetAccess(fleet, UNUSED_BROKER), deliveries=deliveries_for(store, fleet)) as url:
        operator = log_in_page(browser, url, "olga")
        operator.click(f"#alert-{false_alert.event_id} a.feedback")
        operator.wait_for_selector("#proposal")
        assert operator.inner_text("#template") == false_alert.template_id
        assert operator.query_selector("form.feedback") is None  # only an admin changes templates
        admin = log_in_page(browser, url, "ada")
        admin.click(f"#alert-{false_alert.event_id} a.feedback")
        admin.wait_for_selector("#proposal")
        assert admin.inner_text("#distance") == f"{false_alert.score:.4f}"
        assert admin.inner_text("#threshold") == f"{false_alert.template_threshold:.4f}"
        assert float(admin.inner_text("#new-threshold")) < false_alert.score
        before = float(admin.inner_text("#saving .before"))
        assert float(admin.inner_text("#saving .after")) <= before
        assert "%" in admin.inner_text("#cost .before") or "not measured" in admin.inner_text("#cost .before")
        assert admin.inner_text("#no-changes") == "No template changed yet."
        admin.click("form.feedback button[value=tighten]")
        row = admin.wait_for_selector("#changes tr[data-kind=tighten]")
        assert "ada" in row.inner_text() and row.query_selector("button.revert") is not None
        assert adjustment_rows(store) == [("tighten", "ada", false_alert.event_id, None)]
        (adjustment,) = [a for a in audit.entries(store.engine) if a["action"] == "template_tighten"]
        assert (adjustment["actor"], adjustment["outcome"], adjustment["target"]) == ("ada", "ok", false_alert.event_id)
        assert adjustment["detail"].startswith("adjustment ")
        admin.click("#changes button.revert")
        admin.wait_for_selector("#changes tr[data-kind=tighten] td.reverted:has-text('ada')")
        assert adjustment_rows(store) == [("tighten", "ada", false_alert.event_id, "ada")]
        assert audited(store, "template_revert") == [("ada", "ok", adjustment["detail"].split()[-1])]
        assert admin.evaluate("window.pwned") is None


def test_feedback_is_for_admins_on_false_alerts_tied_to_a_template(store, fleet, listed, false_alert, caplog) -> None:
    identity, _ = listed
    untied = match(identity)  # from a device before template ids
    right = match(identity, template_id=false_alert.template_id)
    store.add_many([untied, right])
    store.add_verdict(untied.event_id, "false_alert", "olga")
    store.add_verdict(right.event_id, "true_alert", "olga")
    with TestClient(console(store, fleet)) as client:
        csrf = logged_in(client, "olga")
        page = client.get("/alerts").text
        assert f'href="/alerts/{false_alert.event_id}/feedback"' in page
        assert f'href="/alerts/{right.event_id}/feedback"' not in page  # judged right: nothing to tighten
        assert (
            "sent before template ids: cannot be tied to a template"
            in client.get(f"/alerts/{untied.event_id}/feedback").text
        )
        assert (
            "feedback takes an alert adjudicated false_alert" in client.get(f"/alerts/{right.event_id}/feedback").text
        )
        url = f"/alerts/{false_alert.event_id}/feedback"
        refused = client.post(url, data={"kind": "tighten", "csrf": csrf}, follow_redirects=False)
        assert refused.status_code == 403 and "operator may not change templates" in refused.text
    with TestClient(console(store, fleet)) as client:
        logged_in(client, "sam")  # another site's operator
        refused = client.get(f"/alerts/{false_alert.event_id}/feedback")
        assert refused.status_code == 403 and false_alert.template_id not in refused.text

    def tries(since: int = 0) -> int:  # delivery rounds that tried to send the deployment's gallery (no broker)
        return sum("gallery for north/cam-1 not delivered" in r.getMessage() for r in caplog.records) - since

    before = tries()
    with TestClient(console(store, fleet)) as client:
        csrf = logged_in(client, "ada")
        url = f"/alerts/{false_alert.event_id}/feedback"
        assert wait_until(lambda: tries(before) == 1)  # the round at start; the next one waits for a change
        assert client.post(url, data={"kind": "tighten"}, follow_redirects=False).status_code == 403  # no CSRF
        assert "use tighten or quarantine" in client.post(url, data={"kind": "loosen", "csrf": csrf}).text
        assert (
            "before template ids: it cannot be tied to a template"
            in client.post(f"/alerts/{untied.event_id}/feedback", data={"kind": "tighten", "csrf": csrf}).text
        )
        done = client.post(url, data={"kind": "quarantine", "csrf": csrf}, follow_redirects=False)
        assert done.status_code == 303
        assert wait_until(lambda: tries(before) == 2)  # the new gallery version is sent at once
        assert "is quarantined already" in client.get(url).text
        assert "no adjustment 999" in client.post(f"{url}/revert", data={"adjustment": "999", "csrf": csrf}).text
    assert adjustment_rows(store) == [("quarantine", "ada", false_alert.event_id, None)]
    assert audited(store, "template_tighten") == [
        ("ada", "failed", untied.event_id),
        ("ada", "refused", false_alert.event_id),
        ("olga", "refused", false_alert.event_id),
    ]
    assert audited(store, "template_quarantine")[0] == ("ada", "ok", false_alert.event_id)
