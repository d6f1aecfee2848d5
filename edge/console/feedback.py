"""Negative feedback on an alert judged false (issue 21 item 5): `edge.central.deployments.feedback`
computes and makes the changes; the console shows, guards and audits them.

- `GET /alerts/{id}/feedback`: for an alert whose counting verdict is false_alert or
  confirmed_false, the template that matched, its threshold, the alert's distance and what
  tightening that template would cost (the person's expected miss rate) and save (expected false
  alerts per 1,000 scans); with the deployment's changes so far. Anyone who sees the site reads it.
- `POST /alerts/{id}/feedback` (`kind` tighten or quarantine) and `POST /alerts/{id}/feedback/revert`
  (`adjustment`): admins only, CSRF-checked, audited (`template_tighten`, `template_quarantine`,
  `template_revert`); the console's delivery task then sends the new gallery version at once.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from edge.central.deployments import feedback
from edge.central.deployments.vault import PhotoVault
from edge.console import delivery
from edge.console.reference_page import stored_alert
from edge.console.sessions import Session
from edge.console.web import Web
from edge.errors import OperatorError

NO_TEMPLATE_ID = "sent before template ids: cannot be tied to a template"


def register(app: FastAPI, web: Web) -> None:
    engine = web.store.engine

    @app.get("/alerts/{event_id}/feedback")
    async def feedback_page(request: Request, event_id: str) -> Response:
        session = web.signed_in(request)
        event = await stored_alert(web, event_id)
        web.allowed(session, session.user.may_see(event.site), "read_feedback", event_id, f"see {event.site}")
        shown: dict[str, Any] = {
            "event": event,
            "person": None if web.names is None else web.names.of(event.identity_id),
        }
        if event.template_id is None:
            return web.page(request, "feedback.html", session, **shown, error=NO_TEMPLATE_ID)
        try:
            proposal = await run_in_threadpool(_propose, request.app, web, event_id)
        except OperatorError as e:
            return web.page(request, "feedback.html", session, **shown, error=str(e))
        changes = await run_in_threadpool(feedback.changes, engine, proposal.deployment)
        return web.page(
            request,
            "feedback.html",
            session,
            **shown,
            error=None,
            proposal=proposal,
            changes=changes,
            kinds=feedback.KINDS if session.user.role == "admin" else (),
            delivered_at_once=delivery.of(request.app) is not None,
        )

    @app.post("/alerts/{event_id}/feedback")
    async def apply_feedback(request: Request, event_id: str, kind: str = Form(""), csrf: str = Form("")) -> Response:
        session = web.signed_in(request)
        action = f"template_{kind}" if kind in feedback.KINDS else "template_change"
        _admin_only(web, session, csrf, action, event_id)
        try:
            adjustment = await run_in_threadpool(_apply, request.app, web, event_id, kind, session.user.name)
        except OperatorError as e:
            web.record(request, session, action, "failed", event_id, str(e))
            return web.page(request, "refused.html", session, status=400, why=str(e))
        web.record(request, session, action, "ok", event_id, f"adjustment {adjustment}")
        _deliver(request.app)
        return RedirectResponse(f"/alerts/{event_id}/feedback#change-{adjustment}", status_code=303)

    @app.post("/alerts/{event_id}/feedback/revert")
    async def revert_feedback(
        request: Request, event_id: str, adjustment: str = Form(""), csrf: str = Form("")
    ) -> Response:
        session = web.signed_in(request)
        _admin_only(web, session, csrf, "template_revert", adjustment)
        if not adjustment.isdigit():
            return web.page(request, "refused.html", session, status=400, why=f"no change {adjustment!r}")
        try:
            await run_in_threadpool(feedback.revert, engine, int(adjustment), session.user.name)
        except OperatorError as e:
            web.record(request, session, "template_revert", "failed", adjustment, str(e))
            return web.page(request, "refused.html", session, status=400, why=str(e))
        web.record(request, session, "template_revert", "ok", adjustment, f"alert {event_id}")
        _deliver(request.app)
        return RedirectResponse(f"/alerts/{event_id}/feedback#change-{adjustment}", status_code=303)


def _admin_only(web: Web, session: Session, csrf: str, action: str, target: str) -> None:
    web.csrf_checked(session, csrf, action, target)
    web.allowed(session, session.user.role == "admin", action, target, "change templates")


def _pricing_and_vault(app: FastAPI) -> tuple[feedback.Pricing, PhotoVault]:
    """What a proposal is computed with: the configured embedder's figures, and the photo key."""
    deliveries = delivery.of(app)
    if deliveries is None:
        raise feedback.FeedbackError("the console runs without --fleet: it has no templates to tighten")
    return feedback.Pricing.of(deliveries.settings), deliveries.vault()


def _propose(app: FastAPI, web: Web, event_id: str) -> feedback.Proposal:
    pricing, vault = _pricing_and_vault(app)
    return feedback.propose(web.store.engine, vault, pricing, event_id)


def _apply(app: FastAPI, web: Web, event_id: str, kind: str, by: str) -> int:
    pricing, vault = _pricing_and_vault(app)
    return feedback.apply(web.store.engine, vault, pricing, event_id, kind, by)


def _deliver(app: FastAPI) -> None:
    """Ask the delivery task for a round now: the changed gallery goes to the devices at once."""
    deliveries = delivery.of(app)
    if deliveries is not None:
        deliveries.changed()
