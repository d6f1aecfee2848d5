"""The operator console: users and roles, sessions, CSRF, throttling and the audit on a real
database (SQLite and PostgreSQL), the HTTP rules through the real application, and the alerts page
in headless Chromium (Playwright), where an alert stored as the collector stores it appears
without a reload and is adjudicated."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the console extra is not installed (pip install -e '.[console]')")

import sqlalchemy as sa  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from support_wait import wait_until  # noqa: E402

from edge.central.trial.store import TrialStore  # noqa: E402
from edge.config import load_settings  # noqa: E402
from edge.console import audit, sessions, users  # noqa: E402
from edge.console.app import COOKIE, ConsoleServer, create_app  # noqa: E402
from edge.console.names import Names  # noqa: E402
from edge.console.schema import open_database  # noqa: E402
from edge.console.schema import sessions as session_table  # noqa: E402
from edge.device.parts import open_gallery  # noqa: E402
from edge.gallery import EMBEDDING_DIM  # noqa: E402
from edge.link.payloads import MatchEvent, utc_now  # noqa: E402
from postgres_server import PostgresServer  # noqa: E402

PASSWORD = "correct horse battery"
HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


@pytest.fixture
def store(db_url: str) -> Iterator[TrialStore]:
    with open_database(db_url) as opened:
        users.add(opened.engine, "ada", "admin", [], PASSWORD)
        users.add(opened.engine, "olga", "operator", ["north"], PASSWORD)
        users.add(opened.engine, "vic", "viewer", ["north"], PASSWORD)
        yield opened


def alert(site: str = "north", identity: str = "id-7", device: str = "cam1") -> MatchEvent:
    now = utc_now()
    return MatchEvent(
        event_id=uuid.uuid4().hex,
        ts=now,
        device_id=device,
        site=site,
        track_id=1,
        identity_id=identity,
        score=0.31,
        threshold=0.44,
        template_threshold=0.42,
        metric="euclidean",
        model_id="dlib_resnet_v1_int8_mirror",
        gallery_version="g3",
        window_id=f"{device}.boot1-000001",
    )


def test_users_roles_and_their_refusals(store: TrialStore) -> None:
    engine = store.engine
    assert [(u.name, u.role, u.sites) for u in users.listed(engine)] == [
        ("ada", "admin", ()),
        ("olga", "operator", ("north",)),
        ("vic", "viewer", ("north",)),
    ]
    for args, why in (
        (("bob", "operator", [], PASSWORD), "--site"),
        (("bob", "admin", ["north"], PASSWORD), "every site"),
        (("bob", "viewer", [], "short"), "at least 12"),
        (("bob", "root", [], PASSWORD), "role 'root'"),
        (("b b", "viewer", [], PASSWORD), "user name"),
        (("ada", "viewer", [], PASSWORD), "exists"),
    ):
        with pytest.raises(users.UserError, match=why):
            users.add(engine, *args)
    olga = users.get(engine, "olga")
    assert olga is not None and olga.may_adjudicate("north") and not olga.may_adjudicate("south")
    vic = users.get(engine, "vic")
    assert vic is not None and vic.may_see("north") and not vic.may_see("south") and not vic.may_adjudicate("north")
    stored = engine.connect().execute(sa.text("SELECT password_hash FROM console_users WHERE name = 'olga'")).scalar()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_sessions_end_at_logout_idle_time_and_password_change(store: TrialStore) -> None:
    engine = store.engine
    token, session = sessions.log_in(engine, "olga", PASSWORD, "10.0.0.1")
    assert sessions.current(engine, token) == session
    sessions.log_out(engine, session)
    assert sessions.current(engine, token) is None
    token, _ = sessions.log_in(engine, "olga", PASSWORD, "10.0.0.1")
    with engine.begin() as connection:
        connection.execute(session_table.update().values(last_seen=utc_now() - sessions.IDLE - timedelta(seconds=1)))
    assert sessions.current(engine, token) is None, "an idle session must end"
    token, _ = sessions.log_in(engine, "olga", PASSWORD, "10.0.0.1")
    users.set_password(engine, "olga", "another long password")
    assert sessions.current(engine, token) is None, "a new password ends the open sessions"


def test_wrong_name_and_wrong_password_look_alike_and_are_throttled(store: TrialStore) -> None:
    engine = store.engine
    messages = set()
    for name in ("olga", "nobody"):
        with pytest.raises(sessions.LoginRefused) as refused:
            sessions.log_in(engine, name, "wrong password!", "10.0.0.2")
        messages.add(str(refused.value))
    assert messages == {sessions.REFUSED}
    for _ in range(sessions.MAX_FAILURES_PER_NAME - 1):
        with pytest.raises(sessions.LoginRefused):
            sessions.log_in(engine, "olga", "wrong password!", "10.0.0.3")
    with pytest.raises(sessions.LoginRefused, match="too many"):
        sessions.log_in(engine, "olga", PASSWORD, "10.0.0.4")  # the right password, after too many wrong ones


def logged_in(client: TestClient, name: str) -> str:
    """Log `name` in through the login form; the session's CSRF token."""
    form = client.get("/login")
    csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
    response = client.post("/login", data={"name": name, "password": PASSWORD, "csrf": csrf}, follow_redirects=False)
    assert response.status_code == 303, response.text
    page = client.get("/alerts")
    return page.text.split('name="csrf" value="')[1].split('"')[0]


def test_csrf_roles_and_logout_over_http(store: TrialStore) -> None:
    event = alert()
    other_site = alert(site="south")
    store.add_many([event, other_site])
    with TestClient(create_app(store)) as client:
        csrf = logged_in(client, "olga")
        url = f"/alerts/{event.event_id}/verdict"
        assert client.post(url, data={"outcome": "true_alert"}, follow_redirects=False).status_code == 403
        bad = {"outcome": "true_alert", "csrf": "x" * 43}
        assert client.post(url, data=bad, follow_redirects=False).status_code == 403
        refused = client.post(
            f"/alerts/{other_site.event_id}/verdict",
            data={"outcome": "false_alert", "csrf": csrf},
            follow_redirects=False,
        )
        assert refused.status_code == 403 and "may not adjudicate south" in refused.text
        ok = client.post(url, data={"outcome": "true_alert", "note": "seen", "csrf": csrf}, follow_redirects=False)
        assert ok.status_code == 303
        assert client.get("/audit", follow_redirects=False).status_code == 403  # an operator does not read it
        old_cookie = client.cookies.get(COOKIE)
        assert client.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
        client.cookies.set(COOKIE, old_cookie)
        after = client.get("/alerts", follow_redirects=False)
        assert after.status_code == 303 and after.headers["location"] == "/login"
    with TestClient(create_app(store)) as client:
        csrf = logged_in(client, "vic")
        viewer = client.post(url, data={"outcome": "false_alert", "csrf": csrf}, follow_redirects=False)
        assert viewer.status_code == 403
    entries = [(e["actor"], e["action"], e["outcome"]) for e in audit.entries(store.engine)]
    assert ("olga", "adjudicate", "ok") in entries and ("vic", "adjudicate", "refused") in entries
    assert entries.count(("olga", "adjudicate", "refused")) == 3  # no token, a wrong token, another site
    assert ("olga", "read_audit", "refused") in entries and ("olga", "logout", "ok") in entries
    assert [v.outcome for v in store.verdicts()] == ["true_alert"]


def test_audit_csv_cells_that_start_like_formulas_are_text(store: TrialStore) -> None:
    audit.record(store.engine, "login", "failed", None, "10.0.0.9", '=HYPERLINK("http://x")', "-2+3")
    with TestClient(create_app(store)) as client:
        logged_in(client, "ada")
        text = client.get("/audit.csv").text
    assert "'=HYPERLINK" in text and "'-2+3" in text
    assert "\n=" not in text and ",=" not in text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(store: TrialStore, port: int | None = None, **options) -> Iterator[str]:
    """The console on `store` served by uvicorn on a loopback port (a free one unless given), in this
    process: its URL. `options` go to `create_app` (fleet, names)."""
    port = port or free_port()
    app = create_app(store, poll_s=0.2, **options)
    server = ConsoleServer(app, host="127.0.0.1", port=port, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_until(lambda: server.started, timeout=30), "the console did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        thread.join(timeout=30)


@pytest.fixture
def names(tmp_path) -> Names:
    """A gallery whose one person, id-7, has a name holding markup."""
    path = tmp_path / "names.sqlite"
    with open_gallery(load_settings(), path, create=True) as gallery:
        descriptor = np.random.default_rng(7).normal(size=(1, EMBEDDING_DIM)).astype(np.float32)
        gallery.add("id-7", HOSTILE, descriptor / np.linalg.norm(descriptor))
    return Names([path])


@pytest.fixture
def console_url(store: TrialStore, names: Names) -> Iterator[str]:
    with served(store, names=names) as url:
        yield url


@pytest.fixture
def browser(chromium: str) -> Iterator:
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra)")
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


def log_in_page(browser, url: str, name: str, password: str = PASSWORD):
    page = browser.new_page()
    page.goto(f"{url}/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    return page


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_alert_appears_live_is_adjudicated_and_hostile_text_stays_text(store, console_url, browser) -> None:
    wrong = log_in_page(browser, console_url, "olga", "not the password")
    assert wrong.inner_text("#error") == sessions.REFUSED
    log_in_page(browser, console_url, HOSTILE, "not the password")  # the name goes into the audit
    page = log_in_page(browser, console_url, "olga")
    page.wait_for_selector("#connection[data-state=live]")
    assert "No image of anyone passing the camera exists anywhere" in page.inner_text(".statement")
    shown = alert(identity=HOSTILE)
    hidden = alert(site="south")
    time.sleep(0.05)
    store.add_many([shown, hidden])  # as the collector stores them
    row = page.wait_for_selector(f"#alert-{shown.event_id}")  # no reload
    assert row.query_selector(".identity").inner_text() == HOSTILE
    assert row.query_selector(".name").inner_text() == ""  # the id HOSTILE is nobody in the gallery
    assert page.evaluate("window.pwned") is None
    assert page.query_selector(f"#alert-{hidden.event_id}") is None, "another site's alert was shown"
    row.query_selector("input[name=note]").fill(HOSTILE)
    row.query_selector("button[value=false_alert]").click()
    page.wait_for_selector(f"#alert-{shown.event_id} .verdict .adjudication:has-text('false_alert by olga')")
    page.click(f"#alert-{shown.event_id} button[value=confirmed_false]")  # then an officer engaged
    page.wait_for_selector(f"#alert-{shown.event_id} .verdict .engagement:has-text('confirmed_false by olga')")
    assert page.inner_text(f"#alert-{shown.event_id} .verdict .adjudication .note") == HOSTILE
    named = alert(identity="id-7")
    store.add_many([named])
    assert page.wait_for_selector(f"#alert-{named.event_id} .name").inner_text() == HOSTILE  # the enrolled name
    page.reload()
    assert page.inner_text(f"#alert-{named.event_id} .name") == HOSTILE
    assert page.inner_text(f"#alert-{shown.event_id} .verdict .adjudication .note") == HOSTILE
    assert page.query_selector(f"#alert-{shown.event_id} .identity").inner_text() == HOSTILE
    assert page.evaluate("window.pwned") is None
    page.click("#logout")
    page.wait_for_url(f"{console_url}/login")
    assert page.goto(f"{console_url}/alerts").url == f"{console_url}/login"
    admin = log_in_page(browser, console_url, "ada")
    admin.goto(f"{console_url}/audit")
    assert "adjudicate" in admin.inner_text("#audit") and HOSTILE in admin.inner_text("#audit")
    assert admin.evaluate("window.pwned") is None


def test_trial_report_downloads_follow_the_users_sites(store: TrialStore) -> None:
    north, south = alert(), alert(site="south")
    store.add_many([north, south])
    store.add_verdict(north.event_id, "true_alert", "olga")
    with TestClient(create_app(store)) as client:
        logged_in(client, "olga")
        csv_text = client.get("/trial/report.csv").text  # her one site by default
        assert csv_text.splitlines()[0].startswith("site,device_id,day") and "south" not in csv_text
        report = client.get("/trial/report.json").json()
        assert report["trial"]["true_alert"] == 1 and report["trial"]["alerts"] == 1
        assert "no scans counted yet" in report["headline"]  # an alert whose window has not come: not 0 scans
        assert client.get("/trial/report.json?site=south").status_code == 403
        assert "not a day" in client.get("/trial?from=yesterday").text
    with TestClient(create_app(store)) as client:
        logged_in(client, "ada")
        assert client.get("/trial/report.json").json()["trial"]["alerts"] == 2


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_trial_page_shows_the_report_in_the_browser(store, console_url, browser) -> None:
    store.add_many([alert(identity=HOSTILE)])
    page = log_in_page(browser, console_url, "olga")
    page.goto(f"{console_url}/trial")
    headline = page.frame_locator("#report").locator("#headline")
    assert "1 alert" in headline.inner_text()
    assert page.evaluate("window.pwned") is None
    page.goto(f"{console_url}/trial?site=south")
    assert "choose one of your sites" in page.inner_text("#error")


def post_from_page(page, action: str, outcome: str) -> str:
    """Submit an adjudication form built in the page, with the session's own CSRF token, as a
    person could from the browser's tools; the text of the page that answers."""
    page.evaluate(
        """([action, outcome]) => {
            const form = document.createElement("form");
            form.method = "post";
            form.action = action;
            const csrf = document.querySelector("input[name=csrf]").value;
            for (const [name, value] of [["outcome", outcome], ["csrf", csrf]]) {
                const input = document.createElement("input");
                input.name = name;
                input.value = value;
                form.append(input);
            }
            document.body.append(form);
            form.submit();
        }""",
        [action, outcome],
    )
    page.wait_for_selector("#error")
    return page.inner_text("#error")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_in_the_browser_a_viewer_and_an_operator_of_another_site_are_refused(store, console_url, browser) -> None:
    north, south = alert(), alert(site="south")
    store.add_many([north, south])
    viewer = log_in_page(browser, console_url, "vic")
    viewer.wait_for_selector(f"#alert-{north.event_id}")
    assert viewer.query_selector(f"#alert-{north.event_id} form.verdict") is None  # nothing to press
    assert "viewer may not adjudicate north" in post_from_page(
        viewer, f"/alerts/{north.event_id}/verdict", "true_alert"
    )
    operator = log_in_page(browser, console_url, "olga")
    assert operator.query_selector(f"#alert-{south.event_id}") is None
    refused = post_from_page(operator, f"/alerts/{south.event_id}/verdict", "false_alert")
    assert "operator may not adjudicate south" in refused
    assert store.verdicts() == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_lost_stream_is_shown_and_resumes_without_losing_alerts(store, browser) -> None:
    port = free_port()
    with served(store, port=port) as url:
        page = log_in_page(browser, url, "olga")
        page.wait_for_selector("#connection[data-state=live]")
        first = alert()
        store.add_many([first])
        page.wait_for_selector(f"#alert-{first.event_id}")  # the stream's last event id is now first's
    page.wait_for_selector("#connection[data-state=lost]")  # the console stopped
    missed = alert()
    store.add_many([missed])  # stored while no stream was open
    with served(store, port=port):
        page.wait_for_selector("#connection[data-state=live]")
        page.wait_for_selector(f"#alert-{missed.event_id}")
        assert len(page.query_selector_all(f"#alert-{first.event_id}")) == 1  # the overlap is not shown twice


@pytest.mark.postgres
def test_a_database_that_goes_away_answers_503_in_one_line(tmp_path) -> None:
    """Its own PostgreSQL, stopped under a running console: a page says so, no traceback."""
    server = PostgresServer(fsync=False)
    try:
        url = server.start()
    except RuntimeError as e:
        pytest.skip(str(e))
    with open_database(url) as opened:
        users.add(opened.engine, "ada", "admin", [], PASSWORD)
        with TestClient(create_app(opened)) as client:
            logged_in(client, "ada")
            server.stop()
            for path in ("/alerts", "/trial/report.csv", "/audit"):
                answer = client.get(path)
                assert answer.status_code == 503 and "cannot be reached" in answer.text, path
