"""End to end: a real device on a live camera publishes through Mosquitto, a real collector stores
its alerts, an operator logged into the console sees them arrive without reloading and
adjudicates one, and the trial report counts that outcome."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi", reason="the console extra is not installed (pip install -e '.[console]')")

from support_wait import wait_until  # noqa: E402
from test_collector import collector_factory, store  # noqa: E402, F401 (fixtures)
from test_console import PASSWORD, browser, log_in_page, served  # noqa: E402, F401 (fixtures)
from test_device_e2e import gallery, slideshow, slideshow_jpegs  # noqa: E402, F401 (fixtures)
from test_remote_config import camera, device, fleet  # noqa: E402, F401 (fixtures)

from edge.central.deployments.schema import migrate as migrate_deployments  # noqa: E402
from edge.central.fleet.folder import FleetDir  # noqa: E402
from edge.cli import main  # noqa: E402
from edge.console import audit, users  # noqa: E402
from edge.console.fleet import FleetAccess  # noqa: E402
from edge.console.schema import migrate  # noqa: E402


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_a_real_device_alert_reaches_the_operator_live_and_the_report_counts_the_verdict(
    device,  # noqa: F811 (the fixtures imported above)
    collector_factory,  # noqa: F811
    store,  # noqa: F811
    browser,  # noqa: F811
    db_url,
    tmp_path,
):
    migrate_deployments(store.engine)  # as `edge console serve` opens its database
    migrate(store.engine)
    users.add(store.engine, "olga", "operator", ["test"], PASSWORD)
    with served(store) as url:
        page = log_in_page(browser, url, "olga")
        page.wait_for_selector("#connection[data-state=live]")
        collector_factory()
        device.start()
        row = page.wait_for_selector("#alerts tbody tr", timeout=120_000)  # the first alert, no reload
        event_id = row.get_attribute("data-event-id")
        assert row.query_selector(".site").inner_text() == "test"
        row.query_selector("button[value=true_alert]").click()
        page.wait_for_selector(f"#alert-{event_id} .verdict .adjudication:has-text('true_alert by olga')")
    device.stop()
    assert wait_until(lambda: len(store.events()) >= 1, timeout=30)
    assert main(["trial", "report", "--db", db_url, "--out", str(tmp_path / "report")]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["trial"]["true_alert"] == 1 and report["trial"]["adjudicated"] == 1, report["trial"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_fleet_page_shows_a_running_device_and_an_admin_changes_it_from_the_page(
    device,  # noqa: F811
    broker,
    fleet,  # noqa: F811
    store,  # noqa: F811
    browser,  # noqa: F811
):
    migrate_deployments(store.engine)  # as `edge console serve` opens its database
    migrate(store.engine)
    users.add(store.engine, "ada", "admin", [], PASSWORD)
    users.add(store.engine, "vic", "viewer", ["elsewhere"], PASSWORD)
    access = FleetAccess(FleetDir(fleet), broker.url)
    admin = users.get(store.engine, "ada")
    device.start()
    online = lambda: [d for d in access.devices(admin) if d["state"] == "online"]  # noqa: E731
    assert wait_until(online, timeout=90), device.log.read_text()[-2000:]
    with served(store, fleet=access) as url:
        viewer = log_in_page(browser, url, "vic")
        viewer.goto(f"{url}/fleet")
        assert viewer.query_selector("#fleet tbody tr") is None, "a viewer of another site saw this device"
        assert viewer.query_selector("form.change") is None
        page = log_in_page(browser, url, "ada")
        page.goto(f"{url}/fleet")
        row = page.wait_for_selector("#fleet tbody tr")
        assert "test/cam-1" in row.inner_text() and "online" in row.inner_text()
        page.fill("form.change textarea[name=set]", "match.threshold=0.45")
        page.click("form.change button[type=submit]")
        assert "applied" in page.wait_for_selector("#outcome", timeout=60_000).inner_text()
        page.goto(f"{url}/fleet")
        page.fill("form.change textarea[name=set]", "mqtt.url=mqtt://elsewhere:1883")
        page.click("form.change button[type=submit]")
        refused = page.wait_for_selector("#outcome", timeout=60_000).inner_text()
        assert "rejected" in refused and "mqtt.url" in refused
    assert [e["outcome"] for e in audit.entries(store.engine) if e["action"] == "config_change"] == ["failed", "ok"]
