"""The stage-timing hooks the loop calls, as an interface: the device never imports `edge.bench`.

`edge bench` passes an implementation (`edge.bench.timer.StageTimer`); `edge run` passes none,
and the loop then makes no timing call at all.
"""

from __future__ import annotations

from typing import Protocol

from edge.device.sources import Frame


class StageTimer(Protocol):
    """`begin(frame)` when the loop takes a frame, `lap(stage)` after each stage: a lap is the
    time since the previous call, so nothing between two laps goes unmeasured."""

    def begin(self, frame: Frame) -> None: ...

    def lap(self, stage: str) -> None: ...
