"""New alerts for every open alert page, read once however many pages are open.

`AlertFeed` is one task that reads the alerts stored since its last read and hands them to every
open stream's queue (each stream keeps those its user may see). It reads when `AlertWake` says
so: on PostgreSQL the collector's commit sends `NOTIFY edge_alerts` (`edge.central.trial.store`)
and one thread here LISTENs on its own connection, so an alert is read within a query of its
commit; SQLite has no notifications, so there the feed reads every `POLL_S`. It also reads at
least every `FALLBACK_S`, so a lost listening connection (reconnected after `RETRY_S`) delays
alerts but loses none. A stream too slow to keep up is dropped; its browser reconnects with the
last alert it got (Last-Event-ID) and catches up from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool

from edge.central.trial.store import ALERTS_CHANNEL, TrialStore
from edge.console.alerts import stored_since
from edge.console.names import Names
from edge.link.payloads import utc_now

log = logging.getLogger(__name__)

POLL_S = 0.5
FALLBACK_S = 5.0
RETRY_S = 2.0
QUEUE_BATCHES = 100  # reads a stream may fall behind before it is dropped


class AlertWake:
    """`start(loop)`, `stop()`; streams `await wait()` between reads of the store."""

    def __init__(self, url: sa.URL, poll_s: float = POLL_S) -> None:
        self._url = url
        self.listens = url.get_backend_name() == "postgresql"
        self._timeout = FALLBACK_S if self.listens else poll_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self.generation = 0  # wakes so far: a stream notes it before reading the store
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._event = loop, asyncio.Event()
        if self.listens:
            self._thread = threading.Thread(target=self._listen, name="alert-listen", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    async def wait(self, seen: int) -> None:
        """Until new alerts were committed (PostgreSQL) or the read interval has passed; at once
        when a wake came after `generation` was `seen` (the stream was reading the store then)."""
        assert self._event is not None, "start() first"
        if self.generation != seen:
            return
        try:
            await asyncio.wait_for(self._event.wait(), self._timeout)
        except asyncio.TimeoutError:
            pass

    def _wake_all(self) -> None:
        """On the event loop: release every waiting stream, and arm a new event for the next wait."""
        event, self._event = self._event, asyncio.Event()
        self.generation += 1
        if event is not None:
            event.set()

    def _listen(self) -> None:
        import psycopg

        conninfo = self._url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stopping.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True) as connection:
                    connection.execute(f"LISTEN {ALERTS_CHANNEL}")
                    while not self._stopping.is_set():
                        for _ in connection.notifies(timeout=1.0, stop_after=1):
                            assert self._loop is not None
                            self._loop.call_soon_threadsafe(self._wake_all)
            except psycopg.Error as e:
                log.warning("alert notifications lost (%s): retrying in %g s; pages still read every %g s",
                            e, RETRY_S, FALLBACK_S)  # fmt: skip
                self._stopping.wait(RETRY_S)


Batch = list[dict[str, Any]]


class AlertFeed:
    """`start()`, `stop()` (on the event loop); streams `subscribe()` a queue of alert batches
    (None: dropped, reconnect) and `unsubscribe()` it."""

    def __init__(self, store: TrialStore, wake: AlertWake, names: Names | None = None) -> None:
        self._store = store
        self.names = names
        self._wake = wake
        self._queues: set[asyncio.Queue[Batch | None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake.start(self._loop)
        self._task = asyncio.create_task(self._run(), name="alert-feed")

    async def stop(self) -> None:
        self._wake.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def end_streams(self) -> None:
        """Close every open stream (from any thread): the server is stopping, and waits for none."""
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._drop_all)

    def _drop_all(self) -> None:
        for queue in list(self._queues):
            self._drop(queue)

    def _drop(self, queue: asyncio.Queue[Batch | None]) -> None:
        """End one stream: its queue's last item is None (its browser reconnects and catches up)."""
        self._queues.discard(queue)
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(None)

    def subscribe(self) -> asyncio.Queue[Batch | None]:
        queue: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=QUEUE_BATCHES)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Batch | None]) -> None:
        self._queues.discard(queue)

    async def _run(self) -> None:
        cursor = utc_now()
        sent: deque[str] = deque(maxlen=5000)  # the overlap of consecutive reads is sent once
        while True:
            seen = self._wake.generation
            try:
                batch = [
                    a
                    for a in await run_in_threadpool(stored_since, self._store, cursor, None, self.names)
                    if a["event_id"] not in sent
                ]
            except Exception as e:  # the database away: pages keep their alerts, the next read retries
                log.warning("cannot read new alerts: %s", e)
                batch = []
            for alert in batch:
                sent.append(alert["event_id"])
                cursor = max(cursor, datetime.fromisoformat(alert["received_at"]))
            if batch:
                for queue in list(self._queues):
                    try:
                        queue.put_nowait(batch)
                    except asyncio.QueueFull:
                        self._drop(queue)
            await self._wake.wait(seen)
