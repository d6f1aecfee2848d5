"""The console delivers deployment galleries by itself: a task that runs `deliver_due` every few
seconds (a device gets its gallery at the deployment's start, a list without those removed or
expired, and the empty one at the end) and once right after each watchlist change made here.

One round at a time, in a worker thread; a round that fails (broker or database away) is logged
in one line and the next one retries. It also holds what the deployment pages need beyond the
fleet: the settings that build galleries, the photo key, and the stills pipeline that checks
uploaded photos (loaded on first use, used by one request at a time: its interpreters are not
shared between threads).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from edge.central.deployments.delivery import deliver_due
from edge.central.deployments.vault import PhotoVault
from edge.config import Settings
from edge.console.fleet import FleetAccess
from edge.device.parts import stills_vision
from edge.vision import Vision

log = logging.getLogger(__name__)

DELIVER_EVERY_S = 30.0


class Deliveries:
    """`start()` and `await stop()` on the event loop (the app's lifespan); `changed()` after a
    watchlist change asks for a round now; `vision()` and `vault()` for the deployment pages."""

    def __init__(self, engine: sa.Engine, fleet: FleetAccess, settings: Settings, every_s: float = DELIVER_EVERY_S):
        self._engine = engine
        self.fleet = fleet
        self.settings = settings
        self.every_s = every_s  # 0: only after changes made in the console
        self.vision_lock = threading.Lock()
        self._vision: Vision | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    def vault(self) -> PhotoVault:
        """The fleet's photo key (made on first use, 0600)."""
        return PhotoVault.of(self.fleet.folder, create=True)

    def vision(self) -> Vision:
        """The stills pipeline, loaded once; hold `vision_lock` while using it."""
        if self._vision is None:
            self._vision = stills_vision(self.settings)
        return self._vision

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="gallery-delivery")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def changed(self) -> None:
        """A watchlist changed: deliver now rather than at the next round (on the event loop)."""
        if self._wake is not None:
            self._wake.set()

    def deliver_now(self) -> list[dict[str, Any]]:
        """One round, in this thread."""
        return deliver_due(self._engine, self.vault(), self.fleet.folder, self.fleet.broker_url, self.settings)

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            try:
                for sent in await run_in_threadpool(self.deliver_now):
                    if "error" not in sent:
                        log.info(
                            "deployment %s: gallery sent to %s (%s)", sent["deployment"], sent["device"], sent["reason"]
                        )
            except Exception as e:  # the database or the key away: the next round retries
                log.warning("gallery delivery round failed: %s", " ".join(str(e).split()))
            timeout = self.every_s if self.every_s > 0 else None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)


def of(app: FastAPI) -> Deliveries | None:
    """The app's delivery (None: the console runs without --fleet)."""
    return getattr(app.state, "deliveries", None)
