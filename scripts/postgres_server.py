"""A throwaway PostgreSQL server in a temp folder, for the tests and scripts/bench_collect.py.

`initdb` + `pg_ctl` from Debian's `postgresql` package on a free loopback port, user `edge`,
trust authentication, durable by default (fsync on, as a fleet's server runs). As root the server runs as the
`postgres` user, since initdb refuses root (/work/shared/notes/services.md).
tests/support_postgres.py wraps it in pytest fixtures (with a skip when the server cannot start).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from local_broker import free_port

PG_USER = "edge"


def pg_bin() -> Path | None:
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


class PostgresServer:
    """`with PostgresServer() as url:` a running server's `postgresql://edge@127.0.0.1:PORT/postgres`."""

    def __init__(self, *, fsync: bool = True) -> None:
        bin_dir = pg_bin()
        if bin_dir is None or not (bin_dir / "pg_ctl").exists():
            raise RuntimeError("PostgreSQL not found: apt-get install postgresql (or set EDGE_PG_BIN)")
        self.bin = bin_dir
        self.home = Path(tempfile.mkdtemp(prefix="edge-pg-"))
        self.port = free_port()
        self.fsync = fsync

    @property
    def url(self) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        subprocess.run(_as_server_user(list(argv)), check=True, capture_output=True, text=True)

    def start(self) -> str:
        """Start it; `RuntimeError` with initdb's or the server's own words when it cannot."""
        if os.geteuid() == 0:
            shutil.chown(self.home, "postgres")  # mkdtemp's folder, not pytest's 0700 one: postgres enters
        data, log = self.home / "data", self.home / "log"
        try:
            self._run(str(self.bin / "initdb"), "-D", str(data), "-A", "trust", "-U", PG_USER)
            self.resume()
        except (OSError, subprocess.CalledProcessError) as e:
            detail = (getattr(e, "stderr", "") or "").strip()
            server_log = log.read_text(errors="replace")[-500:].strip() if log.exists() else ""
            shutil.rmtree(self.home, ignore_errors=True)
            raise RuntimeError(f"PostgreSQL could not start: {e} {detail} {server_log}") from None
        return self.url

    def resume(self) -> None:
        """Start the server on its data (after `halt`: a database outage ends)."""
        options = f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1" + (
            "" if self.fsync else " -c fsync=off"
        )
        data, log = self.home / "data", self.home / "log"
        self._run(str(self.bin / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start")

    def halt(self) -> None:
        """Stop the server and keep its data (a database outage begins)."""
        subprocess.run(
            _as_server_user([str(self.bin / "pg_ctl"), "-D", str(self.home / "data"), "-m", "fast", "-w", "stop"]),
            capture_output=True,
        )

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
