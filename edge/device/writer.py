"""`DiskWriter`: one thread that does the loop's disk writes, in order, off the inference thread.

A match event is committed to the SQLite outbox with a full sync, and the counters' totals are
written and fsynced when a window closes. On an SD card one sync can take tens of milliseconds,
long enough to stall the loop and drop camera frames, so the loop only hands these writes over
(`submit`, or a function wrapped by `defer`) and goes on. Jobs run one at a time in the order
given, so events reach the outbox in the order they were raised.

What this costs: a power cut loses the jobs still queued, which in practice is the last few
milliseconds of events; `stop()` runs every queued job before it returns, so a clean stop loses
nothing. A job that raises (disk full, I/O error) is logged with what it was and counted in
`failures`; the jobs after it still run.
"""

from __future__ import annotations

import functools
import logging
import queue
from collections.abc import Callable
from typing import Any

from edge.service import ServiceThread

log = logging.getLogger(__name__)

Job = Callable[[], object]


class DiskWriter:
    """A queue of write jobs and the thread named "disk" that runs them."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread = ServiceThread("disk", self._run, wake=lambda: self._jobs.put(None))
        self.failures = 0

    def start(self) -> DiskWriter:
        self._thread.start()
        return self

    def submit(self, job: Job) -> None:
        """Queue `job` and return at once; it runs after every job queued before it."""
        self._jobs.put(job)

    def defer(self, function: Callable[..., object]) -> Callable[..., None]:
        """`function` made to queue its calls here instead of running them (its result is lost)."""

        def queued(*args: Any, **kwargs: Any) -> None:
            self.submit(functools.partial(function, *args, **kwargs))

        return queued

    def stop(self, timeout: float = 30.0) -> None:
        """Run every job queued so far, then end the thread (or, if it never started, run them
        here). Waits up to `timeout` seconds for a thread stuck on a hung disk."""
        if self._thread.stop(timeout):
            self._drain()  # the thread never started, or jobs came after it ended
        else:
            log.error("disk writes still blocked: the jobs still queued are lost")

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            self._do(job)

    def _drain(self) -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                self._do(job)

    def _do(self, job: Job) -> None:
        try:
            job()
        except Exception:
            self.failures += 1
            log.exception("disk write failed and is lost: %r", job)
