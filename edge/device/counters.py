"""The field-trial counters, exactly as docs/pages/device.md ("Counters") defines them, in windows.

- frame: a frame the loop processed; frames_dropped: frames the camera replaced before the
  loop took them (counted apart, never as frames).
- detection: a face box above the detector threshold in one frame.
- scan: a track that passed the quality gate and was embedded at least once (counted at its
  first descriptor).
- quality_rejected: a track that ended without ever passing the gate.
- match: a scan whose score crossed the threshold for some identity (one per track at most).
- messages_dropped: events or windows lost because the state disk refused them and the outbox's
  memory queue was full too (`Outbox.dropped`, read through `dropped_messages` at each window's
  close); 0 on a healthy device.

Windows carry an id unique across restarts (`<boot id>-<sequence>`), so the central report
can sum them idempotently. Totals since installation persist in a small JSON file written
atomically when a window closes (through `write`, e.g. the device's `DiskWriter`, so the fsync
happens off the loop's thread); a power cut loses at most the open window.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.atomic import remove_temporaries, write_atomically
from edge.link.payloads import MAX_WINDOW

log = logging.getLogger(__name__)


class CountersError(ValueError):
    """The persisted totals cannot be read; the message names the file."""


COUNTS = ("frames", "frames_dropped", "detections", "scans", "quality_rejected", "matches", "messages_dropped")
_ADDED_LATER = {"messages_dropped"}  # absent from totals files written before it existed: 0
MAX_WINDOW_S = MAX_WINDOW.total_seconds()
_LATENCY_SAMPLES = 4096  # per window; enough for p95 at 30 fps over two minutes


@dataclass
class Window:
    """Counts of one window; `latency_ms` holds capture-to-processed times of its frames."""

    window_id: str
    started_at: float
    started_monotonic: float
    frames: int = 0
    frames_dropped: int = 0
    detections: int = 0
    scans: int = 0
    quality_rejected: int = 0
    matches: int = 0
    messages_dropped: int = 0
    latency_ms: np.ndarray = field(default_factory=lambda: np.empty(_LATENCY_SAMPLES, np.float32), repr=False)
    latency_count: int = 0


class Counters:
    """Counts for the current window plus persisted totals. Used from the loop thread only.

    write: runs the job that saves the totals; by default at once, on the caller's thread.
    """

    def __init__(
        self,
        totals_path: Path | None,
        window_s: float,
        clock=time.time,
        monotonic=time.monotonic,
        write: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self.totals_path = totals_path
        self._write = write or (lambda job: job())
        self.window_s = window_s
        self._clock = clock
        self._monotonic = monotonic
        self._rng = np.random.default_rng()
        self.boot_id = uuid.uuid4().hex[:12]
        self.dropped_messages: Callable[[], int] = lambda: 0  # the outbox's drops so far (set by the device)
        self._dropped_seen = 0
        self._sequence = 0
        self.totals = self._load_totals()
        self.window = self._new_window()

    def _new_window(self) -> Window:
        self._sequence += 1
        return Window(f"{self.boot_id}-{self._sequence:06d}", self._clock(), self._monotonic())

    def _load_totals(self) -> dict[str, int]:
        totals = dict.fromkeys(COUNTS, 0)
        if self.totals_path is None:
            return totals
        remove_temporaries(self.totals_path)  # of a save a killed process left half-way
        if self.totals_path.is_file():
            try:
                saved = json.loads(self.totals_path.read_text())
                if isinstance(saved, dict):
                    saved = {k: 0 for k in _ADDED_LATER} | saved
                if not isinstance(saved, dict) or any(
                    not isinstance(saved.get(k), int) or saved[k] < 0 for k in COUNTS
                ):
                    raise ValueError(f"expected a non-negative integer for each of {', '.join(COUNTS)}")
                totals.update({k: saved[k] for k in COUNTS})
            except ValueError as e:
                raise CountersError(
                    f"counters file {self.totals_path} is corrupt ({e}); move it aside to start counting from zero"
                ) from e
        return totals

    def add(self, name: str, n: int = 1) -> None:
        setattr(self.window, name, getattr(self.window, name) + n)

    def latency(self, ms: float) -> None:
        w = self.window
        if w.latency_count < _LATENCY_SAMPLES:
            w.latency_ms[w.latency_count] = ms
        else:  # keep a uniform sample of the window (reservoir)
            slot = int(self._rng.integers(0, w.latency_count + 1))
            if slot < _LATENCY_SAMPLES:
                w.latency_ms[slot] = ms
        w.latency_count += 1

    def _elapsed(self, now: float) -> float:
        """Seconds since the window started: by the wall clock, unless that jumped (a board
        without a real-time clock sets it at its first NTP sync), then by the monotonic clock,
        so that a window is never negative nor longer than a payload allows."""
        w = self.window
        elapsed = now - w.started_at
        if 0 <= elapsed <= MAX_WINDOW_S:
            return elapsed
        return min(max(self._monotonic() - w.started_monotonic, 0.0), MAX_WINDOW_S)

    def due(self) -> bool:
        return self._elapsed(self._clock()) >= self.window_s

    def close_window(self) -> dict[str, Any]:
        """End the window: add it to the persisted totals and return its figures."""
        dropped = self.dropped_messages()
        self.add("messages_dropped", dropped - self._dropped_seen)
        self._dropped_seen = dropped
        w, now = self.window, self._clock()
        elapsed = self._elapsed(now)
        if elapsed != now - w.started_at:
            log.warning("clock jumped in window %s: its start is set %.0f s before its end", w.window_id, elapsed)
        counts = {k: getattr(w, k) for k in COUNTS}
        for k, v in counts.items():
            self.totals[k] += v
        if self.totals_path is not None:
            self._write(functools.partial(_save_totals, self.totals_path, dict(self.totals)))
        samples = w.latency_ms[: min(w.latency_count, _LATENCY_SAMPLES)]
        p50, p95 = np.percentile(samples, [50, 95]).tolist() if samples.size else (0.0, 0.0)
        duration = max(elapsed, 1e-9)
        self.window = self._new_window()
        return {
            "window_id": w.window_id,
            "window_start": now - elapsed,
            "window_end": now,
            **counts,
            "fps": counts["frames"] / duration,
            "latency_ms_p50": float(p50),
            "latency_ms_p95": float(p95),
        }


def _save_totals(path: Path, totals: dict[str, int]) -> None:
    """Write `totals` to `path` atomically (a power cut leaves the old file or the new one), owner only.

    A disk that refuses (full) costs nothing but the file's freshness: the totals stay in memory
    and the next window's save writes them all.
    """
    try:
        write_atomically(path, json.dumps(totals).encode())
    except OSError as e:
        log.warning("counters not saved to %s (%s); they are saved again when the next window closes", path, e)
