"""A real, throwaway PostgreSQL for tests, and `db_url` that runs a test on SQLite and PostgreSQL.

Fixtures: `postgres_url` (session: `initdb` + `pg_ctl` from Debian's `postgresql` package on a
free loopback port in a temp folder, user `edge`, stopped with `-m fast` at teardown; skips with
the reason when it cannot start) and `db_url` (parametrized "sqlite" / "postgresql": a fresh
SQLite file, or a fresh database on that server, per test). As root, the server runs as the
`postgres` user (initdb refuses root), as /work/shared/notes/services.md describes.

Use them with `pytest_plugins = ["support_postgres"]` (tests/conftest.py does).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from postgres_server import PostgresServer  # scripts/postgres_server.py: one way to start a server


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """`postgresql://edge@127.0.0.1:PORT/postgres` of a server that lives for the session (fsync
    off: throwaway data)."""
    try:
        server = PostgresServer(fsync=False)
        url = server.start()
    except RuntimeError as e:
        pytest.skip(str(e))
    try:
        yield url
    finally:
        server.stop()


def _admin(server_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(sql)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty trial database: a SQLite file, or a new database on `postgres_url`."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'trial.db'}"
        return
    server = request.getfixturevalue("postgres_url")
    name = f"trial_{uuid.uuid4().hex[:12]}"
    _admin(server, f"CREATE DATABASE {name}")
    yield server.rsplit("/", 1)[0] + f"/{name}"
    _admin(server, f"DROP DATABASE {name} WITH (FORCE)")
