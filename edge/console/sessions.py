"""Logins and server-side sessions.

A session is a random token in an HttpOnly, SameSite=Strict cookie (Secure under TLS); the
database keeps only its sha256, with a CSRF token every state-changing request must carry.
A session ends at logout, after `IDLE` without a request, or `ABSOLUTE` after its login, and when
its user is removed or given a new password. Failed logins are throttled per name and per
address; every refusal says the same thing, so a wrong name and a wrong password look alike.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from edge.console import users as accounts
from edge.console.schema import failed_logins, sessions
from edge.console.users import User
from edge.link.payloads import utc_now

IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(hours=12)
THROTTLE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_NAME = 5
MAX_FAILURES_PER_ADDRESS = 20
REFUSED = "wrong name or password"
THROTTLED = "too many failed logins: wait 15 minutes, or ask an admin"


@dataclass(frozen=True)
class Session:
    user: User
    csrf_token: str
    token_sha256: str

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf_token.encode())


class LoginRefused(Exception):
    """A login that did not succeed; the message is all a person is shown."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _throttled(connection: sa.Connection, name: str, address: str) -> bool:
    since = utc_now() - THROTTLE_WINDOW
    count = sa.select(sa.func.count()).select_from(failed_logins).where(failed_logins.c.at >= since)
    by_name = connection.execute(count.where(failed_logins.c.name == name)).scalar_one()
    by_address = connection.execute(count.where(failed_logins.c.address == address)).scalar_one()
    return by_name >= MAX_FAILURES_PER_NAME or by_address >= MAX_FAILURES_PER_ADDRESS


def log_in(engine: sa.Engine, name: str, password: str, address: str) -> tuple[str, Session]:
    """The new session's cookie token and the session; `LoginRefused` with what to show."""
    with engine.connect() as connection:
        if _throttled(connection, name, address):
            raise LoginRefused(THROTTLED)
    user = accounts.authenticate(engine, name, password)
    if user is None:
        with engine.begin() as connection:
            connection.execute(failed_logins.insert(), {"name": name[:64], "address": address, "at": utc_now()})
        raise LoginRefused(REFUSED)
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = utc_now()
    row = {"token_sha256": _digest(token), "user_name": user.name, "csrf_token": csrf, "address": address}
    with engine.begin() as connection:
        connection.execute(sessions.insert(), {**row, "created_at": now, "last_seen": now})
    return token, Session(user, csrf, row["token_sha256"])


def current(engine: sa.Engine, token: str | None, touch: bool = True) -> Session | None:
    """The live session of a cookie token, or None; `touch`: a request by the person, so the idle
    time restarts (an open alert stream checks its session without keeping it alive)."""
    if not token:
        return None
    digest, now = _digest(token), utc_now()
    with engine.begin() as connection:
        row = connection.execute(
            sa.select(sessions).where(
                sessions.c.token_sha256 == digest,
                sessions.c.ended_at.is_(None),
                sessions.c.last_seen > now - IDLE,
                sessions.c.created_at > now - ABSOLUTE,
            )
        ).first()
        if row is None:
            return None
        if touch:
            connection.execute(sessions.update().where(sessions.c.token_sha256 == digest).values(last_seen=now))
    user = accounts.get(engine, row.user_name)
    return None if user is None else Session(user, row.csrf_token, digest)


def log_out(engine: sa.Engine, session: Session) -> None:
    """End the session for good: its cookie is refused from now on."""
    with engine.begin() as connection:
        connection.execute(
            sessions.update().where(sessions.c.token_sha256 == session.token_sha256).values(ended_at=utc_now())
        )
