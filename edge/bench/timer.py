"""Wall time per loop stage, for `edge bench`: the loop's `edge.device.timing.StageTimer` hooks.

The loop calls `begin(frame)` when it takes a frame and `lap(stage)` after each stage; a lap
is the time since the previous call, so stages need no start calls and nothing between two
laps goes unmeasured. The loop makes these calls only when it was given a timer.
"""

from __future__ import annotations

import resource
import sys
import time

import numpy as np

from edge.device import timing
from edge.device.sources import Frame


class StageTimer(timing.StageTimer):
    """Milliseconds per stage call, and how long each frame waited before the loop took it."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}
        self._mark = 0.0

    def begin(self, frame: Frame) -> None:
        """The loop took `frame`: restart, and record how long it waited since its capture."""
        self.restart()
        self.add("wait", (time.monotonic() - frame.captured_at) * 1000.0)

    def restart(self) -> None:
        """The next lap starts now."""
        self._mark = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.add(stage, (now - self._mark) * 1000.0)
        self._mark = now

    def add(self, stage: str, ms: float) -> None:
        self.samples.setdefault(stage, []).append(ms)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per stage: calls, median and p95 ms, total ms."""
        return {stage: summarise(values) for stage, values in self.samples.items()}


def summarise(values: list[float]) -> dict[str, float]:
    """calls, median, p95 and total of a list of milliseconds (NaN figures when empty)."""
    if not values:
        return {"calls": 0, "median_ms": float("nan"), "p95_ms": float("nan"), "total_ms": 0.0}
    p50, p95 = np.percentile(values, [50, 95]).tolist()
    return {"calls": len(values), "median_ms": p50, "p95_ms": p95, "total_ms": float(np.sum(values))}


def cpu_seconds() -> float:
    """CPU time of this process so far, every thread, user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """Largest resident set this process has had, MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024
