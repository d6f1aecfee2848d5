"""`GET /alerts/{id}/reference`: the matched person's best reference photo of the deployment the
alert's device served (`edge.console.reference`), for admins and the operators who adjudicate the
alert's site; each view audited (`view_reference_photo`), never cached. Nothing of the passer-by
exists to show."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from edge.central.deployments.vault import VaultError
from edge.console import alerts, reference
from edge.console.web import Web
from edge.errors import OperatorError


def register(app: FastAPI, web: Web) -> None:
    engine = web.store.engine

    @app.exception_handler(NoAlert)
    async def no_alert(request: Request, e: NoAlert) -> Response:
        return web.page(request, "refused.html", None, status=404, why=str(e))

    @app.get("/alerts/{event_id}/reference")
    async def reference_photo(request: Request, event_id: str) -> Response:
        session = web.signed_in(request)
        event = await stored_alert(web, event_id)
        web.allowed(
            session,
            session.user.may_adjudicate(event.site),
            "view_reference_photo",
            event_id,
            f"see the reference photos of {event.site}",
        )
        try:
            found = await run_in_threadpool(reference.photo, engine, reference.vault_of(web.fleet), event)
        except VaultError as e:
            web.record(request, session, "view_reference_photo", "failed", event_id, str(e))
            return PlainTextResponse(str(e), status_code=503)
        if found is None:
            return PlainTextResponse(reference.NONE_SHOWN, status_code=404)
        deployment, data = found
        web.record(request, session, "view_reference_photo", "ok", event_id, f"{deployment}/{event.identity_id}")
        return Response(data, media_type=reference.image_type(data), headers={"Cache-Control": "no-store"})


class NoAlert(OperatorError):
    """No stored alert has the id asked for."""


async def stored_alert(web: Web, event_id: str) -> Any:
    """The stored alert, else a 404 page (raised)."""
    event = await run_in_threadpool(alerts.event, web.store, event_id)
    if event is None:
        raise NoAlert(f"no alert {event_id}")
    return event
