"""systemd's notify protocol in pure Python, so that systemd restarts a device whose frames stop.

The unit (firmware-config/edge.service) is `Type=notify` with `WatchdogSec=`: systemd waits for
READY=1, then kills and restarts the service when WATCHDOG=1 does not come in time. The pings
come from the loop after a processed frame, never from a timer, so a hung camera or a hung loop
stops them. They are rate-limited to half the watchdog period (as sd_watchdog_enabled(3)
advises): one clock read per frame, one datagram per period. STATUS= says in `systemctl status`
whether frames flow, and marks the moment they stopped.

Without $NOTIFY_SOCKET (not started by systemd: a shell, the tests, `edge bench`) nothing is
sent; without $WATCHDOG_USEC (or for another process's $WATCHDOG_PID) no WATCHDOG=1 is sent.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

WAITING = "STATUS=waiting for frames from the camera"
RUNNING = "STATUS=processing frames"


def watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Seconds between pings: half of $WATCHDOG_USEC, or None when the watchdog is off for us."""
    usec, pid = environ.get("WATCHDOG_USEC"), environ.get("WATCHDOG_PID")
    try:
        if not usec or (pid and int(pid) != os.getpid()):
            return None
        return int(usec) / 2e6
    except ValueError:
        log.warning("ignoring a malformed WATCHDOG_USEC=%r / WATCHDOG_PID=%r", usec, pid)
        return None


class Notifier:
    """Tells systemd the loop's state through the datagram socket at `address` (None: no-op)."""

    def __init__(
        self, address: str | None, interval_s: float | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.address = address
        self.interval_s = interval_s
        self._clock = clock
        self._last_ping: float | None = None
        self._waiting = False
        self._socket: socket.socket | None = None
        self._failed = False
        if address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        return cls(environ.get("NOTIFY_SOCKET") or None, watchdog_interval(environ))

    def ready(self) -> None:
        """Start-up is done and the loop starts: systemd now counts the watchdog period."""
        self._send(f"READY=1\n{RUNNING}")

    def frame(self) -> None:
        """A frame was processed: ping when the last ping is half a period old."""
        if self._waiting:
            self._waiting = False
            self._send(RUNNING)
        if self.interval_s is None:
            return
        now = self._clock()
        if self._last_ping is None or now - self._last_ping >= self.interval_s:
            self._last_ping = now
            self._send("WATCHDOG=1")

    def no_frame(self) -> None:
        """The source gave no frame in time: say so once; no ping until frames flow again."""
        if not self._waiting:
            self._waiting = True
            self._send(WAITING)

    def stopping(self) -> None:
        """The service is shutting down (flushing the outbox may take a while)."""
        self._send("STOPPING=1")
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _send(self, message: str) -> None:
        if self._socket is None or self.address is None:
            return
        # An address starting with "@" is in the abstract namespace: a leading NUL byte.
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            self._socket.sendto(message.encode(), target)
        except OSError as e:  # systemd gone or the socket replaced: the device keeps running
            if not self._failed:
                self._failed = True
                log.warning("cannot notify systemd at %s: %s", self.address, e)
