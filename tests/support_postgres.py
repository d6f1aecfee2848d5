"""A real, throwaway PostgreSQL for tests, and `db_url` that runs a test on SQLite and PostgreSQL.

Fixtures: `postgres_url` (session: `initdb` + `pg_ctl` from Debian's `postgresql` package on a
free loopback port in a temp folder, user `edge`, stopped with `-m fast` at teardown; skips with
the reason when it cannot start) and `db_url` (parametrized "sqlite" / "postgresql": a fresh
SQLite file, or a fresh database on that server, per test). As root, the server runs as the
`postgres` user (initdb refuses root), as /work/shared/notes/services.md describes.

Use them with `pytest_plugins = ["support_postgres"]` (tests/conftest.py does).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_broker import free_port

PG_USER = "edge"


def _pg_bin() -> Path | None:
    """$EDGE_PG_BIN, else the newest /usr/lib/postgresql/*/bin, else initdb on PATH."""
    if os.environ.get("EDGE_PG_BIN"):
        return Path(os.environ["EDGE_PG_BIN"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """`postgresql://edge@127.0.0.1:PORT/postgres` of a server that lives for the session."""
    bin_dir = _pg_bin()
    if bin_dir is None or not (bin_dir / "pg_ctl").exists():
        pytest.skip("PostgreSQL not found: apt-get install postgresql (or set EDGE_PG_BIN)")
    home = Path(tempfile.mkdtemp(prefix="edge-pg-"))  # not under pytest's 0700 folder: postgres must enter
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
    data, log, port = home / "data", home / "log", free_port()
    try:
        subprocess.run(
            _as_server_user([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", PG_USER]),
            check=True,
            capture_output=True,
            text=True,
        )
        options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"  # throwaway data
        subprocess.run(
            _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start"]),
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", "") or ""
        server_log = log.read_text(errors="replace")[-500:] if log.exists() else ""
        shutil.rmtree(home, ignore_errors=True)
        pytest.skip(f"PostgreSQL could not start: {e} {detail.strip()} {server_log.strip()}")
    try:
        yield f"postgresql://{PG_USER}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]), capture_output=True
        )
        shutil.rmtree(home, ignore_errors=True)


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
