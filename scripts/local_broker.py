"""A real Mosquitto on a loopback port, for the demo (scripts/demo.py) and the tests.

`Broker(workdir)` writes a config (anonymous or with a password file, optional ACL and
persistence, or a listener of the caller's such as `edge fleet broker-config`'s TLS one),
`start()` waits until the port accepts connections, `stop()` and `start()` again keep the port,
`pause()`/`resume()` freeze it (SIGSTOP/SIGCONT).

Why here, in scripts/ and not in the package: the appliance connects to a broker and never runs
one, and no off-device tool (edge/central) needs one either; only the checkout's demo and tests
do, and neither is installed. The demo imports it as its neighbour; pytest puts scripts/ on
sys.path (`pythonpath` in pyproject.toml) for tests/support_broker.py.

`EDGE_MOSQUITTO` names the mosquitto binary (a path that does not exist means: no Mosquitto).
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

MOSQUITTO = os.environ.get("EDGE_MOSQUITTO") or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


class Broker:
    """One Mosquitto on a fixed loopback port; `stop()` and `start()` keep the port."""

    def __init__(
        self,
        workdir: Path,
        *,
        persistence: bool = False,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        listener: str | None = None,
        port: int | None = None,
    ) -> None:
        """`listener`: config text that replaces the anonymous loopback listener (with its own
        authentication, ACL and queue limits), listening on `port`."""
        self.workdir = workdir
        self.port = port or free_port()
        self.log_path = workdir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None
        lines = [
            listener if listener is not None else f"listener {self.port} 127.0.0.1",
            f"user {getpass.getuser()}",  # only used when run as root: stay the same user
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
        ]
        if listener is None:  # a caller's listener (the fleet's) runs with the queue limits it sets
            lines.append("max_queued_messages 100000")
        if persistence:
            lines += ["persistence true", f"persistence_location {workdir}/"]
        else:
            lines.append("persistence false")
        if users:
            password_file = workdir / "passwd"
            password_file.touch(mode=0o600)
            for name, password in users.items():
                subprocess.run(
                    [MOSQUITTO_PASSWD, "-b", str(password_file), name, password], check=True, capture_output=True
                )
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        elif listener is None:
            lines.append("allow_anonymous true")
        if acl is not None:
            (workdir / "acl").write_text(acl)
            lines.append(f"acl_file {workdir / 'acl'}")
        self.conf_path = workdir / "mosquitto.conf"
        self.conf_path.write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start Mosquitto and wait until its port accepts connections."""
        if self.running:
            return
        with self.log_path.open("ab") as log_file:
            self._proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.conf_path)], stdout=log_file, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while not _accepts(self.port):
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self._proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto did not listen on {self.port}:\n{self.log()}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop Mosquitto the clean way (SIGTERM: it saves persistence and sends no wills)."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGCONT)
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def pause(self) -> None:
        """Freeze Mosquitto (SIGSTOP): connections stay open but nothing is acknowledged."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
