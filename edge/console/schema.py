"""The console's own tables in the trial database: users, sessions, failed logins and the audit.

They have their own Alembic history (`console_alembic_version`), apart from the trial's, so the
trial's schema and the console's change independently in one database.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from edge.central.deployments.schema import migrate as deployments_migrate
from edge.central.trial import store as trial_store
from edge.central.trial.schema import UtcDateTime
from edge.central.trial.store import TrialStore

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "console_alembic_version"
ROLES = ("admin", "operator", "viewer")

metadata = sa.MetaData()

users = sa.Table(
    "console_users",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("sites", sa.JSON, nullable=False),  # [] for an admin, or a viewer of every site
    sa.Column("password_hash", sa.Text, nullable=False),  # argon2id, with its parameters and salt
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("password_changed_at", UtcDateTime, nullable=False),
    sa.CheckConstraint(f"role IN ({', '.join(repr(r) for r in ROLES)})", name="ck_console_users_role"),
)

sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("token_sha256", sa.String(64), primary_key=True),  # the cookie's token itself is never stored
    sa.Column(
        "user_name",
        sa.String(64),
        sa.ForeignKey("console_users.name", name="fk_console_sessions_user", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("address", sa.String(64), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("last_seen", UtcDateTime, nullable=False),
    sa.Column("ended_at", UtcDateTime, nullable=True),
)

failed_logins = sa.Table(
    "console_failed_logins",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("address", sa.String(64), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Index("ix_console_failed_logins_name_at", "name", "at"),
    sa.Index("ix_console_failed_logins_address_at", "address", "at"),
)

audit = sa.Table(
    "console_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("actor", sa.String(64), nullable=True),  # None: nobody logged in (a failed login)
    sa.Column("address", sa.String(64), nullable=True),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("target", sa.String(200), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),  # ok, refused, failed
    sa.Column("detail", sa.Text, nullable=True),
)


def migrate(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the console's tables to the newest schema (created when missing)."""
    trial_store.migrate(engine, revision, MIGRATIONS)


def open_database(url: str) -> TrialStore:
    """The trial database (made when missing, as `edge collect` makes it) with the deployments'
    and the console's tables."""
    return TrialStore.open(url, also=(deployments_migrate, migrate))
