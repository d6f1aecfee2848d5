"""What a page module needs from the console to add its routes: the store, the page renderer,
and the checks every route makes (signed in, role, CSRF), so that each module registers its own
routes (`register(app, web)`) and every one of them refuses, audits and renders the same way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response

from edge.central.trial.store import TrialStore
from edge.console import audit
from edge.console.fleet import FleetAccess
from edge.console.names import Names
from edge.console.sessions import Session

# A report's HTML, shown in a page's frame or opened alone: its own inline styles, no script at all.
REPORT_HTML_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'; sandbox"


@dataclass(frozen=True)
class Web:
    store: TrialStore
    fleet: FleetAccess | None
    names: Names | None
    # page(request, template, session, status=200, **context): a Jinja2 page with the base context
    page: Callable[..., Response]
    # signed_in(request): the live session, else the login form answers (raised)
    signed_in: Callable[[Request], Session]
    # allowed(session, ok, action, target, may_not): refused with 403 and audited unless ok (raised)
    allowed: Callable[[Session, bool, str, str | None, str], None]
    # csrf_checked(session, csrf, action, target): refused with 403 and audited on a wrong token (raised)
    csrf_checked: Callable[[Session, str, str, str | None], None]
    # address(request): the client's address, for the audit
    address: Callable[[Request], str]

    def record(
        self, request: Request, session: Session, action: str, outcome: str, target: str | None, detail: Any
    ) -> None:
        """One audit entry for `session`'s user from this request."""
        audit.record(self.store.engine, action, outcome, session.user.name, self.address(request), target, detail)
