"""The console's daily purge (`edge trial purge`'s implementation): deployments whose retention
period has passed have their events and verdicts reduced to the counts their report needs.

It runs once as the console starts, then every 24 hours. Each deployment purged is audited
(`purge`, the deployment as target; a run with nothing due once, without a target). A run that
fails is logged in one line and audited as failed; the next day's run tries again (a purge only
ever reduces what is due, so a late one loses nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool

from edge.central.deployments.retention import purge_due
from edge.console import audit

log = logging.getLogger(__name__)

EVERY_S = 24 * 3600.0
ACTOR = "console"  # the audit's actor for what the console does by itself


class DailyPurge:
    """`start()` and `await stop()` on the event loop; `run_once()` is one purge, audited."""

    def __init__(
        self, engine: sa.Engine, every_s: float = EVERY_S, purge: Callable[[sa.Engine], list[str]] = purge_due
    ) -> None:
        self._engine = engine
        self._every_s = every_s
        self._purge = purge
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="daily-purge")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self._every_s)

    async def run_once(self) -> list[str] | None:
        """Purge what is due now: the deployments purged, or None when the run failed."""
        try:
            purged = await run_in_threadpool(self._purge, self._engine)
        except Exception as e:  # the database away, a bad row: tomorrow's run tries again
            why = " ".join(str(e).split()) or type(e).__name__
            log.warning("the daily purge failed (%s): it runs again in %g h", why, self._every_s / 3600)
            await run_in_threadpool(self._audit, "failed", None, why)
            return None
        for deployment in purged:
            await run_in_threadpool(self._audit, "ok", deployment, "events and verdicts reduced to the report's counts")
        if purged:
            log.info("purged %s", ", ".join(purged))
        else:  # the audit shows the purge ran, even on the days it had nothing to do
            await run_in_threadpool(self._audit, "ok", None, "nothing due")
        return purged

    def _audit(self, outcome: str, target: str | None, detail: str) -> None:
        try:
            audit.record(self._engine, "purge", outcome, ACTOR, None, target, detail)
        except sa.exc.SQLAlchemyError as e:
            log.warning("the purge could not be audited: %s", " ".join(str(e).split()))
