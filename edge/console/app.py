"""The console's web application (Starlette via FastAPI, Jinja2 pages, plain forms, and one small
script of ours for the live alert stream; nothing loaded from elsewhere, so it works offline).

Every page needs a session; every state-changing request carries the session's CSRF token; a
request above the user's role gets 403 and an audit entry. Pages escape everything they show
(Jinja2 autoescape) and the script writes text only (`textContent`), so a site, device, identity
or note holding markup shows as text. The Content-Security-Policy allows this origin's script
and styles only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import signal
from collections import deque
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI, Form, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from edge.central.trial.store import TrialStore
from edge.central.trial.terms import ADJUDICATIONS, ENGAGEMENTS, TrialStoreError
from edge.console import alerts, audit, deployments, feedback, reference_page, trial
from edge.console import sessions as logins
from edge.console.delivery import Deliveries
from edge.console.fleet import FleetAccess
from edge.console.names import Names
from edge.console.purging import DailyPurge
from edge.console.sessions import LoginRefused, Session
from edge.console.trial import FORMATS, Choice, ChoiceError
from edge.console.wake import POLL_S, AlertFeed, AlertWake
from edge.console.web import REPORT_HTML_CSP, Web
from edge.errors import OperatorError
from edge.link import LinkError
from edge.link.payloads import utc_now

HERE = Path(__file__).parent
log = logging.getLogger(__name__)
COOKIE = "edge_console_session"
LOGIN_CSRF_COOKIE = "edge_console_login"
SESSION_CHECK_S = 5.0  # how often an open alert stream checks that its session still lives
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
OPERATOR_ERRORS = (OperatorError, LinkError)  # what a person can act on: shown as one line, never a traceback
PAGE_MODULES: tuple[Any, ...] = (deployments, reference_page, feedback)  # each `register(app, web)`s its routes
NO_IMAGES = (
    "No image of anyone passing the camera exists anywhere: devices send only the match metadata "
    "below. Every alert is for a person to check, never a verdict."
)


def create_app(
    store: TrialStore,
    secure_cookies: bool = False,
    poll_s: float = POLL_S,
    fleet: FleetAccess | None = None,
    names: Names | None = None,
    deliveries: Deliveries | None = None,
) -> FastAPI:
    """The console on `store`'s database; `secure_cookies` under TLS (its own or a proxy's);
    `fleet`: where the fleet page reads devices from and sends changes through (None: no fleet
    page); `names`: the enrolled people's names (None: alerts show ids only); `deliveries`: the
    task that delivers deployment galleries (None: none delivered, deployment pages read-only)."""
    engine = store.engine
    feed = AlertFeed(store, AlertWake(engine.url, poll_s), names)
    purge = DailyPurge(engine)  # at start, then every 24 h (`edge trial purge`)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        feed.start()
        purge.start()
        if deliveries is not None:
            deliveries.start()
        try:
            yield
        finally:
            await feed.stop()
            await purge.stop()
            if deliveries is not None:
                await deliveries.stop()

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.feed = feed  # the server ends the open streams when it stops (`serve`)
    app.state.purge = purge
    app.state.deliveries = deliveries  # `edge.console.delivery.of(app)`, for the page modules
    templates = Jinja2Templates(directory=HERE / "templates")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def address(request: Request) -> str:
        return request.client.host if request.client is not None else "unknown"

    def session_of(request: Request) -> Session | None:
        return logins.current(engine, request.cookies.get(COOKIE))

    def page(request: Request, name: str, session: Session | None, status: int = 200, **context: Any) -> Response:
        return templates.TemplateResponse(
            request, name, {"session": session, "no_images": NO_IMAGES, **context}, status_code=status
        )

    def refuse(request: Request, session: Session, action: str, target: str | None, why: str) -> Response:
        audit.record(engine, action, "refused", session.user.name, address(request), target, why)
        return page(request, "refused.html", session, status=403, why=why)

    def to_login() -> Response:
        return RedirectResponse("/login", status_code=303)

    def signed_in(request: Request) -> Session:
        """The request's live session; without one the page answers with the login form."""
        session = session_of(request)
        if session is None:
            raise _NotLoggedIn
        return session

    def allowed(session: Session, ok: bool, action: str, target: str | None, may_not: str) -> None:
        """Go on when `ok`; else the request is refused (403: "<role> may not <may_not>") and audited."""
        if not ok:
            raise _Refused(session, action, target, f"{session.user.role} may not {may_not}")

    def csrf_checked(session: Session, csrf: str, action: str, target: str | None) -> None:
        if not session.csrf_ok(csrf):
            raise _Refused(session, action, target, "missing or wrong CSRF token")

    @app.exception_handler(_NotLoggedIn)
    async def not_logged_in(request: Request, _: _NotLoggedIn) -> Response:
        return to_login()

    @app.exception_handler(_Refused)
    async def refused(request: Request, e: _Refused) -> Response:
        return refuse(request, e.session, e.action, e.target, e.why)

    @app.exception_handler(sa.exc.OperationalError)
    async def database_away(request: Request, e: sa.exc.OperationalError) -> Response:
        log.warning("the trial database cannot be reached: %s", " ".join(str(e.orig).split()))
        return PlainTextResponse("the trial database cannot be reached just now: try again shortly", status_code=503)

    @app.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request, error: str | None = None) -> Response:
        token = secrets.token_urlsafe(32)
        response = page(request, "login.html", None, csrf=token, error=error)
        response.set_cookie(
            LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure_cookies, path="/login"
        )
        return response

    @app.post("/login")
    async def login(request: Request, name: str = Form(""), password: str = Form(""), csrf: str = Form("")) -> Response:
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not expected or not secrets.compare_digest(expected.encode(), csrf.encode()):
            return PlainTextResponse("the login form expired: reload the page", status_code=403)
        try:
            token, session = await run_in_threadpool(logins.log_in, engine, name, password, address(request))
        except LoginRefused as e:
            audit.record(engine, "login", "failed", None, address(request), name[:200], str(e))
            response = page(request, "login.html", None, status=401, csrf=expected, error=str(e))
            return response
        audit.record(engine, "login", "ok", session.user.name, address(request))
        response = RedirectResponse("/alerts", status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=secure_cookies)
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return response

    @app.post("/logout")
    async def logout(request: Request, csrf: str = Form("")) -> Response:
        session = signed_in(request)
        csrf_checked(session, csrf, "logout", None)
        logins.log_out(engine, session)
        audit.record(engine, "logout", "ok", session.user.name, address(request))
        response = to_login()
        response.delete_cookie(COOKIE)
        return response

    @app.get("/")
    async def home() -> Response:
        return RedirectResponse("/alerts", status_code=303)

    @app.get("/alerts", response_class=HTMLResponse)
    async def alerts_page(request: Request) -> Response:
        session = signed_in(request)
        shown = await run_in_threadpool(alerts.recent, store, session.user, names)
        return page(
            request,
            "alerts.html",
            session,
            alerts=shown,
            since=shown[0]["received_at"] if shown else utc_now().isoformat(),
            adjudications=ADJUDICATIONS,
            engagements=ENGAGEMENTS,
            may_adjudicate=[a["event_id"] for a in shown if session.user.may_adjudicate(a["site"])],
            reference_photos=fleet is not None,  # the photo key lives in the fleet folder
        )

    @app.get("/alerts/stream")
    async def alert_stream(request: Request) -> Response:
        session = logins.current(engine, request.cookies.get(COOKIE), touch=False)
        if session is None:
            return PlainTextResponse("log in first", status_code=401)
        cursor = _time(request.headers.get("last-event-id")) or _time(request.query_params.get("since")) or utc_now()
        return StreamingResponse(
            _stream(request, store, session, cursor, feed),
            media_type="text/event-stream",
            headers={"X-Accel-Buffering": "no"},  # nginx: pass each event on at once
        )

    @app.post("/alerts/{event_id}/verdict")
    async def adjudicate(
        request: Request, event_id: str, outcome: str = Form(""), note: str = Form(""), csrf: str = Form("")
    ) -> Response:
        session = signed_in(request)
        csrf_checked(session, csrf, "adjudicate", event_id)
        site = await run_in_threadpool(alerts.site_of, store, event_id)
        if site is None:
            return page(request, "refused.html", session, status=404, why=f"no alert {event_id}")
        allowed(
            session,
            session.user.may_adjudicate(site),
            "adjudicate",
            event_id,
            f"{session.user.role} may not adjudicate {site}",
        )
        try:
            await run_in_threadpool(store.add_verdict, event_id, outcome, session.user.name, note.strip() or None)
        except TrialStoreError as e:
            return page(request, "refused.html", session, status=400, why=str(e))
        audit.record(engine, "adjudicate", "ok", session.user.name, address(request), event_id, outcome)
        return RedirectResponse(f"/alerts#alert-{event_id}", status_code=303)

    @app.get("/fleet", response_class=HTMLResponse)
    async def fleet_page(request: Request) -> Response:
        session = signed_in(request)
        devices, error = await _fleet_rows(fleet, session)
        return page(request, "fleet.html", session, fleet=fleet is not None, devices=devices, error=error)

    @app.get("/fleet.json")
    async def fleet_json(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return PlainTextResponse("log in first", status_code=401)
        devices, error = await _fleet_rows(fleet, session)
        return JSONResponse({"devices": devices, "error": error})

    @app.post("/fleet/config", response_class=HTMLResponse)
    async def fleet_config(
        request: Request,
        device: str = Form(""),
        set_: str = Form("", alias="set"),
        unset: str = Form(""),
        csrf: str = Form(""),
    ) -> Response:
        session = signed_in(request)
        csrf_checked(session, csrf, "config_change", device)
        allowed(
            session,
            session.user.role == "admin",
            "config_change",
            device,
            f"{session.user.role} may not change devices",
        )
        if fleet is None:
            return page(request, "refused.html", session, status=400, why="the console runs without --fleet")
        try:
            result = await run_in_threadpool(fleet.change, device, set_, unset)
        except OPERATOR_ERRORS as e:
            audit.record(engine, "config_change", "failed", session.user.name, address(request), device, str(e))
            return page(request, "refused.html", session, status=400, why=str(e))
        outcome = "ok" if result.get("status") == "applied" else "failed"
        detail = json.dumps({k: result.get(k) for k in ("version", "set", "unset", "status", "reason")})
        audit.record(engine, "config_change", outcome, session.user.name, address(request), device, detail)
        return page(request, "changed.html", session, result=result)

    web = Web(store, fleet, names, page, signed_in, allowed, csrf_checked, address)
    for module in PAGE_MODULES:
        module.register(app, web)

    def choice_of(request: Request) -> Choice:
        q = request.query_params
        return Choice(q.get("from", ""), q.get("to", ""), q.get("site", ""), q.get("device", ""))

    @app.get("/trial", response_class=HTMLResponse)
    async def trial_page(request: Request) -> Response:
        session = signed_in(request)
        choice = choice_of(request)
        try:
            choice.selection(session.user)
        except ChoiceError as e:
            return page(request, "trial.html", session, choice=choice, error=str(e))
        return page(request, "trial.html", session, choice=choice, error=None, formats=list(FORMATS))

    @app.get("/trial/report.{fmt}")
    async def trial_report(request: Request, fmt: str) -> Response:
        session = signed_in(request)
        if fmt not in FORMATS:
            return PlainTextResponse(f"no report format {fmt!r}: use {', '.join(FORMATS)}", status_code=404)
        try:
            report = await run_in_threadpool(trial.report, store, session.user, choice_of(request))
        except ChoiceError as e:
            return refuse(request, session, "read_report", request.url.query, str(e))
        media_type, render = FORMATS[fmt]
        if fmt == "html":  # shown in the trial page's frame: its own inline styles, and no script at all
            headers = {"Content-Security-Policy": REPORT_HTML_CSP}
        else:
            headers = {"Content-Disposition": f'attachment; filename="trial-report.{fmt}"'}
        return Response(render(report), media_type=media_type, headers=headers)

    @app.get("/audit", response_class=HTMLResponse)
    async def audit_page(request: Request) -> Response:
        session = signed_in(request)
        allowed(
            session, session.user.role == "admin", "read_audit", None, f"{session.user.role} may not read the audit"
        )
        return page(request, "audit.html", session, entries=audit.entries(engine, limit=500))

    @app.get("/audit.csv")
    async def audit_csv(request: Request) -> Response:
        session = signed_in(request)
        allowed(
            session, session.user.role == "admin", "read_audit", None, f"{session.user.role} may not read the audit"
        )
        return PlainTextResponse(
            audit.as_csv(audit.entries(engine)),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="console-audit.csv"'},
        )

    return app


class ConsoleServer(uvicorn.Server):
    """uvicorn's server, which ends the open alert streams as it begins to stop: it would
    otherwise wait for them, then cancel them with a traceback each."""

    def __init__(self, app: FastAPI, **config: Any) -> None:
        super().__init__(uvicorn.Config(app, **config))
        self._feed: AlertFeed = app.state.feed

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._feed.end_streams()
        super().handle_exit(sig, frame)

    def stop(self) -> None:
        """Stop from another thread, as a signal would."""
        self.handle_exit(signal.SIGTERM, None)


async def _fleet_rows(fleet: FleetAccess | None, session: Session) -> tuple[list[dict[str, Any]], str | None]:
    """The devices the user may see, or why there are none to show."""
    if fleet is None:
        return [], "this console runs without a fleet: start it with --fleet DIR --broker URL"
    try:
        return await run_in_threadpool(fleet.devices, session.user), None
    except OPERATOR_ERRORS as e:
        return [], f"the broker cannot be read: {e}"


class _NotLoggedIn(Exception):
    """No live session: the login form answers."""


class _Refused(Exception):
    """A request above the user's role or without its CSRF token: 403, audited."""

    def __init__(self, session: Session, action: str, target: str | None, why: str) -> None:
        super().__init__(why)
        self.session, self.action, self.target, self.why = session, action, target, why


def _time(text: str | None) -> datetime | None:
    """A stream cursor (an alert's ISO 8601 receipt time), or None for none or a bad one."""
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


async def _stream(
    request: Request, store: TrialStore, session: Session, cursor: datetime, feed: AlertFeed
) -> AsyncIterator[str]:
    """Server-sent events: each alert the user may see stored from `cursor` on, once, with its
    receipt time as the event id (a browser that reconnects sends it back as Last-Event-ID and
    misses nothing): first those already stored (one read), then the feed's."""
    queue = feed.subscribe()
    sent: deque[str] = deque(maxlen=5000)
    user = session.user

    def events(batch: list[dict[str, Any]]) -> Iterator[str]:
        for alert in batch:
            if alert["event_id"] in sent or not user.may_see(alert["site"]):
                continue
            sent.append(alert["event_id"])
            shown = {**alert, "may_adjudicate": user.may_adjudicate(alert["site"])}
            yield f"id: {alert['received_at']}\nevent: alert\ndata: {json.dumps(shown)}\n\n"

    try:
        yield "retry: 1000\n\n"
        for event in events(await run_in_threadpool(alerts.stored_since, store, cursor, user, feed.names)):
            yield event
        loop = asyncio.get_running_loop()
        checked = loop.time()
        while not await request.is_disconnected():
            try:
                batch = await asyncio.wait_for(queue.get(), SESSION_CHECK_S)
            except asyncio.TimeoutError:
                batch = []
                yield ": keepalive\n\n"
            if loop.time() - checked >= SESSION_CHECK_S:
                checked = loop.time()
                if await run_in_threadpool(logins.current, store.engine, request.cookies.get(COOKIE), False) is None:
                    yield "event: ended\ndata: {}\n\n"
                    return
            if batch is None:  # too slow to keep up: the browser reconnects and catches up
                return
            for event in events(batch):
                yield event
    finally:
        feed.unsubscribe(queue)
