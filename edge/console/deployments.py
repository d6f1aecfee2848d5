"""The deployment pages: the deployments a user may see, each with its watchlist and its devices
(the gallery each reports against the one last delivered, a withdrawn one flagged); admins create
and end deployments and add and remove people, through `edge.central.deployments.watchlist`, the
implementation behind `edge deploy`.

Who sees what: a deployment is shown to admins and to users who may see one of its sites
(read-only). Reference photos are shown only to admins and to the operators who adjudicate one of
its sites, served with no-store. Uploaded photos are written to a private scratch folder for the
quality gate and removed with it; only the sealed copies of those accepted are kept. Every change
is audited and followed by a delivery round (`edge.console.delivery`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from edge.central.deployments import report, watchlist
from edge.central.deployments.delivery import reported
from edge.central.deployments.schema import deliveries, people, photos
from edge.central.deployments.watchlist import DeploymentError
from edge.console import delivery
from edge.console.delivery import Deliveries
from edge.console.deployment_forms import FormError, form_time, saved_photos, spec_of
from edge.console.reference import image_type
from edge.console.sessions import Session
from edge.console.users import User
from edge.console.web import REPORT_HTML_CSP, Web
from edge.enrollment import Person
from edge.errors import OperatorError
from edge.link import LinkError
from edge.link.payloads import utc_now

NO_FLEET = "the console runs without --fleet and --broker: deployments are read-only here"


def sites_of(devices: Iterable[str]) -> set[str]:
    """The sites of "site/device" names."""
    return {device.split("/")[0] for device in devices}


def may_see(user: User, devices: Iterable[str]) -> bool:
    """Admins, and whoever may see one of the deployment's sites."""
    return user.role == "admin" or any(user.may_see(site) for site in sites_of(devices))


def may_see_photos(user: User, devices: Iterable[str]) -> bool:
    """Admins, and the operators who adjudicate one of the deployment's sites."""
    return user.role == "admin" or any(user.may_adjudicate(site) for site in sites_of(devices))


def watchlist_rows(engine: sa.Engine, name: str) -> list[dict[str, Any]]:
    """Everyone listed now, with the number of photos kept (no photo, no template)."""
    listed = watchlist.listed_people(engine, name)
    counted = (
        sa.select(photos.c.person_id, sa.func.count())
        .join(people, people.c.id == photos.c.person_id)
        .where(people.c.deployment == name)
        .group_by(photos.c.person_id)
    )
    with engine.connect() as connection:
        counts: dict[int, int] = {person: n for person, n in connection.execute(counted)}
    return [
        {
            "identity_id": p.identity_id,
            "name": p.name,
            "reason": p.reason,
            "added_by": p.added_by,
            "added_at": p.added_at,
            "expires_at": p.expires_at,
            "photos": counts.get(p.id, 0),
        }
        for p in listed
    ]


def recent_deliveries(engine: sa.Engine, name: str, limit: int = 50) -> list[Any]:
    query = (
        sa.select(deliveries)
        .where(deliveries.c.deployment == name)
        .order_by(deliveries.c.delivered_at.desc(), deliveries.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as connection:
        return list(connection.execute(query))


def device_rows(engine: sa.Engine, d: Any, service: Deliveries | None, user: User) -> tuple[list[dict[str, Any]], str]:
    """The deployment's devices as they report themselves against what was delivered, and a
    line on why the reported side is missing (no fleet, broker away), else ""."""
    error = ""
    rows: list[dict[str, Any]] = []
    if service is None:
        error = NO_FLEET
    else:
        try:
            rows = service.fleet.devices(user)
        except (OperatorError, LinkError) as e:
            error = f"the broker cannot be read: {e}"
    known = reported(engine, rows)
    return [known.get(device, {"device": device, "state": "unknown"}) for device in d.devices], error


def register(app: FastAPI, web: Web) -> None:
    engine = web.store.engine

    def service() -> Deliveries | None:
        return delivery.of(app)

    def visible(request: Request, session: Session, name: str, action: str = "read_deployment") -> Any:
        """The deployment, when the user may see it (else refused, audited); None when there is none."""
        try:
            d = watchlist.get(engine, name)
        except DeploymentError:
            return None
        web.allowed(session, may_see(session.user, d.devices), action, name, f"see deployment {name}")
        return d

    def missing(request: Request, session: Session, name: str) -> Response:
        return web.page(request, "refused.html", session, status=404, why=f"no deployment {name!r}")

    def changing(session: Session, csrf: str, action: str, target: str) -> Deliveries:
        """An admin's change, with its token, on a console that can deliver."""
        web.csrf_checked(session, csrf, action, target)
        web.allowed(session, session.user.role == "admin", action, target, "change deployments")
        found = service()
        if found is None:
            raise FormError(NO_FLEET)
        return found

    def failed(request: Request, session: Session, action: str, target: str, e: Exception) -> Response:
        web.record(request, session, action, "failed", target, str(e))
        return web.page(request, "refused.html", session, status=400, why=str(e))

    def add_person(found: Deliveries, name: str, person: Person, reason: str, by: str, expires: datetime | None) -> Any:
        with found.vision_lock:
            return watchlist.add_person(engine, found.vault(), found.vision(), name, person, reason, by, expires)

    @app.get("/deployments", response_class=HTMLResponse)
    async def deployments_page(request: Request) -> Response:
        session = web.signed_in(request)
        shown = [
            {**row, "state": state_of(row["state"] == "ended", *map(datetime.fromisoformat, period))}
            for row in await run_in_threadpool(watchlist.summary, engine)
            if may_see(session.user, row["devices"])
            for period in [(row["starts_at"], row["ends_at"])]
        ]
        return web.page(request, "deployments.html", session, deployments=shown, fleet=service() is not None)

    @app.post("/deployments")
    async def create(
        request: Request,
        name: str = Form(""),
        devices: str = Form(""),
        starts_at: str = Form(""),
        ends_at: str = Form(""),
        target_fmr: str = Form(""),
        purpose: str = Form(""),
        authorised_by: str = Form(""),
        retention_days: str = Form("0"),
        csrf: str = Form(""),
    ) -> Response:
        session = web.signed_in(request)
        form = dict(name=name, devices=devices, starts_at=starts_at, ends_at=ends_at, target_fmr=target_fmr)
        form.update(purpose=purpose, authorised_by=authorised_by, retention_days=retention_days)
        try:
            found = changing(session, csrf, "deployment_create", name[:200])
            spec = spec_of(form, session.user.name)
            await run_in_threadpool(watchlist.create, engine, spec, found.fleet.folder)
        except OperatorError as e:
            return failed(request, session, "deployment_create", name[:200], e)
        period = f"{spec.starts_at.isoformat()} to {spec.ends_at.isoformat()}"
        web.record(request, session, "deployment_create", "ok", spec.name, f"{', '.join(spec.devices)}; {period}")
        found.changed()
        return RedirectResponse(f"/deployments/{spec.name}", status_code=303)

    @app.get("/deployments/{name}", response_class=HTMLResponse)
    async def deployment_page(request: Request, name: str) -> Response:
        session = web.signed_in(request)
        d = await run_in_threadpool(visible, request, session, name)
        if d is None:
            return missing(request, session, name)
        listed = await run_in_threadpool(watchlist_rows, engine, name)
        devices, device_error = await run_in_threadpool(device_rows, engine, d, service(), session.user)
        return web.page(
            request,
            "deployment.html",
            session,
            d=d,
            state=state_of(d.ended_at is not None, d.starts_at, d.ends_at),
            people=listed,
            admin=session.user.role == "admin",
            photos_shown=may_see_photos(session.user, d.devices),
            devices=devices,
            device_error=device_error,
            deliveries=await run_in_threadpool(recent_deliveries, engine, name),
            fleet=service() is not None,
            report_formats=list(report.FORMATS),
        )

    @app.get("/deployments/{name}/report.{fmt}")
    async def deployment_report(request: Request, name: str, fmt: str) -> Response:
        """`edge trial report --deployment`'s report; the html one with no script and sandboxed."""
        session = web.signed_in(request)
        if fmt not in report.FORMATS:
            return PlainTextResponse(f"no report format {fmt!r}: use {', '.join(report.FORMATS)}", status_code=404)
        d = await run_in_threadpool(visible, request, session, name, "read_report")
        if d is None:
            return missing(request, session, name)
        try:
            built = await run_in_threadpool(report.build, engine, name)
        except OperatorError as e:
            return web.page(request, "refused.html", session, status=400, why=str(e))
        media_type, render = report.FORMATS[fmt]
        if fmt == "html":
            headers = {"Content-Security-Policy": REPORT_HTML_CSP}
        else:
            headers = {"Content-Disposition": f'attachment; filename="deployment-{name}.{fmt}"'}
        return Response(render(built), media_type=media_type, headers=headers)

    @app.get("/deployments/{name}/people/{identity_id}/photo")
    async def reference_photo(request: Request, name: str, identity_id: str) -> Response:
        session = web.signed_in(request)
        d = await run_in_threadpool(visible, request, session, name, "read_photo")
        if d is None:
            return missing(request, session, name)
        target = f"{name}/{identity_id}"[:200]
        web.allowed(
            session, may_see_photos(session.user, d.devices), "read_photo", target, f"see {name}'s reference photos"
        )
        found = service()
        data = (
            None
            if found is None
            else await run_in_threadpool(watchlist.photo, engine, found.vault(), name, identity_id)
        )
        if data is None:
            return web.page(
                request, "refused.html", session, status=404, why=f"no photo of {identity_id} kept in {name}"
            )
        web.record(request, session, "read_photo", "ok", target, None)
        return Response(data, media_type=image_type(data), headers={"Cache-Control": "no-store"})

    @app.post("/deployments/{name}/people")
    async def add(
        request: Request,
        name: str,
        person_name: str = Form(""),
        identity_id: str = Form(""),
        reason: str = Form(""),
        expires_at: str = Form(""),
        photo: Annotated[list[UploadFile] | None, File()] = None,
        csrf: str = Form(""),
    ) -> Response:
        session = web.signed_in(request)
        target = f"{name}/{identity_id or person_name}"[:200]
        try:
            found = changing(session, csrf, "watchlist_add", target)
            expires = form_time(expires_at, "expiry") if expires_at.strip() else None
            with tempfile.TemporaryDirectory(prefix="edge-console-photos-") as scratch:  # made 0700
                person = Person(
                    person_name.strip(),
                    tuple(await saved_photos(photo or [], Path(scratch))),
                    identity_id.strip() or None,
                )
                added = await run_in_threadpool(add_person, found, name, person, reason, session.user.name, expires)
        except (OperatorError, ValueError) as e:
            return failed(request, session, "watchlist_add", target, e)
        refused = [{"photo": p, "reason": why} for p, why in added.refused]
        outcome = "ok" if added.accepted else "failed"
        detail = f"{len(added.accepted)} photo(s) accepted, {len(refused)} refused"
        web.record(request, session, "watchlist_add", outcome, f"{name}/{added.identity_id}", detail)
        if added.accepted:
            found.changed()
        status = 200 if added.accepted else 400
        return web.page(
            request, "deployment_added.html", session, status=status, deployment=name, added=added, refused=refused
        )

    @app.post("/deployments/{name}/people/{identity_id}/remove")
    async def remove(request: Request, name: str, identity_id: str, csrf: str = Form("")) -> Response:
        session = web.signed_in(request)
        target = f"{name}/{identity_id}"[:200]
        try:
            found = changing(session, csrf, "watchlist_remove", target)
            await run_in_threadpool(watchlist.remove_person, engine, name, identity_id)
        except OperatorError as e:
            return failed(request, session, "watchlist_remove", target, e)
        web.record(request, session, "watchlist_remove", "ok", target, "photos and templates deleted")
        found.changed()
        return RedirectResponse(f"/deployments/{name}", status_code=303)

    @app.post("/deployments/{name}/end")
    async def end(request: Request, name: str, csrf: str = Form("")) -> Response:
        session = web.signed_in(request)
        try:
            found = changing(session, csrf, "deployment_end", name[:200])
            await run_in_threadpool(watchlist.end, engine, name)
        except OperatorError as e:
            return failed(request, session, "deployment_end", name[:200], e)
        web.record(request, session, "deployment_end", "ok", name, "watchlist withdrawn")
        found.changed()
        return RedirectResponse(f"/deployments/{name}", status_code=303)


def state_of(ended: bool, starts_at: datetime, ends_at: datetime) -> str:
    """scheduled, running, over (its period passed, not ended by hand: its people have expired), ended."""
    now = utc_now()
    if ended:
        return "ended"
    return "scheduled" if now < starts_at else ("running" if now < ends_at else "over")
