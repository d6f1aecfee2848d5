"""`ServiceThread`: the start and stop of a background thread that runs until asked to stop.

The device's long-running parts (the disk writer, the camera's capture, the gallery watcher, the
handlers of pushed galleries and of remote configuration) and the MQTT link's outbox publisher
each run one body on a named daemon thread; this is their shared lifecycle:

- `start()` starts the thread;
- `stop(timeout)` sets `stopping`, the event the body watches, calls `wake` for a body that
  waits on something else (a queue, a condition), and waits up to `timeout` seconds for the
  thread to end. A thread still running then is named in a warning and `stop()` returns False;
  it is a daemon, so it does not hold up the process's exit.
- An exception that ends the body is logged when it happens (a background thread must not die
  unnoticed) and raised again by the next `stop()`, on the owner's thread.

Used by `edge.link` and `edge.device`, so it imports nothing from `edge`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class ServiceThread:
    """`body` on a daemon thread named `name`; the body returns once `stopping` is set."""

    def __init__(
        self,
        name: str,
        body: Callable[[], None],
        *,
        stopping: threading.Event | None = None,
        wake: Callable[[], None] | None = None,
    ) -> None:
        """`stopping`: the event `stop()` sets, when the owner shares it (else a new one);
        `wake`: called by `stop()` once it is set, to rouse a body that waits on something else."""
        self.name = name
        self.stopping = stopping or threading.Event()
        self._body = body
        self._wake = wake
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the body to stop and wait up to `timeout` seconds (None: as long as it takes) for
        its thread to end. True once it has ended or when it never started; False, with a
        warning, when it still runs. Raises the exception that ended the body, if one did (once).
        """
        self.stopping.set()
        if self._wake is not None:
            self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("thread %s still running %g s after it was asked to stop", self.name, timeout)
            return False
        error, self._error = self._error, None
        if error is not None:
            raise error
        return True

    def _run(self) -> None:
        try:
            self._body()
        except BaseException as e:
            log.exception("thread %s ended by an error; stop() raises it", self.name)
            self._error = e
