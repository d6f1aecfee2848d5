"""Console users: a name, a role, the sites they may see, and an argon2id password hash.

Roles: an admin manages users and everything else, on every site; an operator sees and
adjudicates the alerts of the sites given to them; a viewer reads (the sites given, or every
site when none is given). Passwords are never stored or logged, only their argon2id hashes
(argon2-cffi's defaults, the parameters and salt inside the hash).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from edge.console.schema import ROLES, sessions, users
from edge.errors import OperatorError
from edge.link.payloads import utc_now

MIN_PASSWORD = 12
_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
_SITE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_hasher = PasswordHasher()  # argon2id
_DUMMY_HASH = _hasher.hash("a password nobody has")  # verified for unknown names: the same time either way


class UserError(OperatorError):
    """A user cannot be added or changed as asked."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    sites: tuple[str, ...]

    def may_see(self, site: str) -> bool:
        return self.role == "admin" or not self.sites and self.role == "viewer" or site in self.sites

    def may_adjudicate(self, site: str) -> bool:
        return self.role == "admin" or self.role == "operator" and site in self.sites


def _check(name: str, role: str, sites: list[str], password: str) -> None:
    if not _NAME.fullmatch(name):
        raise UserError(f"user name {name!r}: 1 to 64 letters, digits, '.', '_', '@' or '-'")
    if role not in ROLES:
        raise UserError(f"role {role!r}: use one of {', '.join(ROLES)}")
    for site in sites:
        if not _SITE.fullmatch(site):
            raise UserError(f"site {site!r}: 1 to 64 letters, digits, '_' or '-', as devices name their site")
    if role == "operator" and not sites:
        raise UserError("an operator adjudicates the alerts of given sites: add --site SITE (one or more)")
    if role == "admin" and sites:
        raise UserError("an admin sees every site: give no --site")
    check_password(password)


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")


def add(engine: sa.Engine, name: str, role: str, sites: list[str], password: str) -> User:
    _check(name, role, sites, password)
    now = utc_now()
    row = {"name": name, "role": role, "sites": sorted(set(sites)), "password_hash": _hasher.hash(password)}
    with engine.begin() as connection:
        if connection.execute(sa.select(users.c.name).where(users.c.name == name)).first() is not None:
            raise UserError(f"user {name!r} exists: remove it first, or change its password (user passwd)")
        connection.execute(users.insert(), {**row, "created_at": now, "password_changed_at": now})
    return User(name, role, tuple(row["sites"]))


def listed(engine: sa.Engine) -> list[User]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(users.c.name, users.c.role, users.c.sites).order_by(users.c.name))
        return [User(r.name, r.role, tuple(r.sites)) for r in rows]


def get(engine: sa.Engine, name: str) -> User | None:
    with engine.connect() as connection:
        r = connection.execute(sa.select(users.c.name, users.c.role, users.c.sites).where(users.c.name == name)).first()
    return None if r is None else User(r.name, r.role, tuple(r.sites))


def remove(engine: sa.Engine, name: str) -> None:
    """Remove a user; their sessions end with them."""
    with engine.begin() as connection:
        connection.execute(sessions.delete().where(sessions.c.user_name == name))
        if connection.execute(users.delete().where(users.c.name == name)).rowcount == 0:
            raise UserError(f"no user {name!r}")


def set_password(engine: sa.Engine, name: str, password: str) -> None:
    """A new password; the user's open sessions end."""
    check_password(password)
    with engine.begin() as connection:
        changed = connection.execute(
            users.update()
            .where(users.c.name == name)
            .values(password_hash=_hasher.hash(password), password_changed_at=utc_now())
        )
        if changed.rowcount == 0:
            raise UserError(f"no user {name!r}")
        connection.execute(sessions.delete().where(sessions.c.user_name == name))


def authenticate(engine: sa.Engine, name: str, password: str) -> User | None:
    """The user when the password is theirs, else None; an unknown name costs the same time."""
    with engine.connect() as connection:
        r = connection.execute(sa.select(users).where(users.c.name == name)).first()
    try:
        _hasher.verify(_DUMMY_HASH if r is None else r.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    return None if r is None else User(r.name, r.role, tuple(r.sites))
