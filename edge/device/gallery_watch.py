"""Watch the gallery file while the device runs, and swap a changed gallery into the loop.

`edge enroll` and `edge gallery remove` change the gallery file in place, one SQLite
transaction per change. Every `match.gallery_poll_s` the watcher stats the file: no open, no
lock, so the CLI never waits on it; the gallery uses SQLite's rollback journal, so every commit
writes the file itself. Only when the file's inode, size or mtime changed does it
open the gallery, read its content version and, if that differs from the one in use, build the
new `Matcher` (on this thread, not the loop's). The loop adopts it at its next frame
(`Loop.swap_matcher`): every event from then on carries the new `gallery_version`, and the
retained status is republished with that version, the number of people enrolled and the
expected false alerts.

Which changes are used:
- a gallery that cannot be read (corrupt, missing, not a gallery, another embedder's) is not:
  the last good one stays in use, one warning is logged, and the status detail `gallery_error`
  says why until a good gallery is read;
- a change that only adds people is refused when the grown gallery expects more false alerts
  than `match.max_false_alerts_per_1000_scans` (the limit `edge run` checks at start);
- a change that removes anybody is always used, over the limit or not: a removal is a withdrawn
  consent, and it must stop that person's alerts.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from edge.gallery import GalleryError, GalleryStore, Matcher
from edge.service import ServiceThread
from edge.vision.false_alerts import expected_false_alerts, over_limit

if TYPE_CHECKING:
    from edge.config import MatchConfig
    from edge.link.payloads import Scalar, Versions
    from edge.vision import ModelEntry
    from edge.vision.cohort import Cohort
    from edge.vision.operating_point import OperatingPoint

log = logging.getLogger(__name__)

# A file changed this recently may change again within the same mtime tick without its stamp
# changing, so its stamp is not trusted yet: it is read again at the next poll.
_SETTLE_NS = 2_000_000_000
_DETAIL_CHARS = 200  # the longest string a status detail may hold


def running_device_note(match: MatchConfig, version: str) -> str:
    """What a device running on a changed gallery does with the change (for the one who changed it)."""
    return (
        f"a running device on this gallery uses version {version} within {match.gallery_poll_s:g} s "
        "(match.gallery_poll_s), from its next frame on"
    )


class StatusLink(Protocol):
    def update_status(self, *, versions: Versions | None = None, details: dict[str, Scalar] | None = None) -> None: ...


class GalleryWatcher:
    """The "gallery" thread: `start()`, `stop()`; `check()` is one poll."""

    def __init__(
        self,
        match: MatchConfig,
        point: OperatingPoint,
        embedder: ModelEntry,
        matcher: Matcher,
        swap: Callable[[Matcher], None],
        link: StatusLink,
        versions: Versions,
        cohort: Cohort,
    ) -> None:
        """`cohort`: the embedder's cohort model, which scales the templates of a migrated or replaced
        gallery and weighs each person's expected false match rate."""
        if match.gallery is None:
            raise ValueError("no gallery to watch")
        self.path: Path = match.gallery
        self._match = match
        self._point = point
        self._embedder = embedder
        self.cohort = cohort
        self._matcher = matcher  # the last one handed to the loop
        self._swap = swap
        self._link = link
        self._versions = versions
        self._seen: tuple[int, ...] | None = None  # the stamp last read; None: read at the next poll
        self._error: str | None = None
        self._lock = threading.Lock()  # one check at a time
        self._thread = ServiceThread("gallery", self._run)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop()

    def use_operating_point(self, match: MatchConfig, point: OperatingPoint) -> None:
        """A remote configuration changed the threshold or the false-alert limit: later galleries are
        judged by the new ones, and the status's expected false alerts say the new figure now."""
        with self._lock:
            self._match, self._point = match, point
            self._report()

    def check(self) -> None:
        """Read the gallery if its file changed; use it if it holds a new, acceptable version.

        Also called from other threads (a gallery pushed over MQTT is swapped in at once, not
        at the next poll): one check at a time."""
        with self._lock:
            self._check()

    def _check(self) -> None:
        stamp = _stamp(self.path)
        if stamp == self._seen:
            return
        # Remembered before the read: a change committed while we read changes the stamp again.
        settled = not stamp or time.time_ns() - stamp[-1] > _SETTLE_NS
        self._seen = stamp if settled else None
        try:
            with GalleryStore.open(
                self.path, self._embedder.model_id, self._embedder.sha256, scaler=self.cohort
            ) as store:
                fresh = store.version != self._matcher.version
                new = store.matcher(self._match.thresholds == "per_template") if fresh else None
        except GalleryError as e:
            self._refuse(str(e))
            return
        except sqlite3.Error as e:  # a file damaged after it opened
            self._refuse(f"cannot read gallery {self.path}: {e}")
            return
        if new is None:
            if self._error is not None:  # the file is back to the gallery in use
                self._error = None
                self._report()
            return
        refusal = self.over_limit(new.version, new.template_counts())
        if refusal is not None:
            self._refuse(refusal)
            return
        old, self._matcher, self._error = self._matcher, new, None
        self._swap(new)
        self._report()
        log.info(
            "gallery %s changed: version %s with %d identities (was %s with %d), in use from the next frame",
            self.path,
            new.version,
            len(new),
            old.version,
            len(old),
        )

    def over_limit(self, version: str, template_counts: Mapping[str, int]) -> str | None:
        """Why gallery `version` ({identity: templates}) is refused for the false-alert limit, or
        None; a removal is never refused. (A pushed gallery is checked before it replaces the file.)"""
        limit = self._match.max_false_alerts_per_1000_scans
        if limit is None:
            return None
        expected = expected_false_alerts(self._point, self.cohort, template_counts.values())
        why = over_limit(expected, limit, self._match.max_false_alerts_basis)
        if why is None:
            return None
        text = f"gallery version {version}: {len(template_counts)} enrolled people {why}"
        if set(self._matcher.identity_ids) <= set(template_counts):  # nobody removed: only additions
            return f"{text}; remove people or templates, or raise the limit"
        log.warning("%s; used anyway, as it removes people (a removal always takes effect)", text)
        return None

    def _refuse(self, why: str) -> None:
        if why != self._error:
            log.warning(
                "gallery change not used: %s; the device goes on with gallery version %s (%d identities)",
                why,
                self._matcher.version,
                len(self._matcher),
            )
            self._error = why
            self._report()

    def _report(self) -> None:
        error = self._error
        if error is not None and len(error) > _DETAIL_CHARS:
            error = error[: _DETAIL_CHARS - 3] + "..."
        self._link.update_status(
            versions=self._versions.model_copy(update={"gallery_version": self._matcher.version}),
            details={
                "gallery_identities": len(self._matcher),
                **expected_false_alerts(self._point, self.cohort, self._matcher.template_counts().values()).details(),
                "gallery_error": error,
            },
        )

    def _run(self) -> None:
        while True:
            try:
                self.check()
            except Exception:  # keep watching: a removal must still reach the loop
                log.exception("gallery check failed")
            if self._thread.stopping.wait(self._match.gallery_poll_s):
                return


def _stamp(path: Path) -> tuple[int, ...]:
    """What changes whenever the file does: device, inode, size, mtime (ns); () when unreadable."""
    try:
        st = os.stat(path)
    except OSError:
        return ()
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns
