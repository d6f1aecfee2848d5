"""The loop's camera: the configured source behind a `LatestFrameGrabber`, switchable while running.

A remote change of a `camera.*` key (docs/pages/fleet.md, "Remote configuration") reopens the source in the
running process, between two frames: the current capture stops (a USB camera cannot be opened
twice), the new one opens, and if it cannot, the previous one opens again and the error goes
to the caller, which rolls the change back. Each grabber has its own stop event: stopping one
for a switch must not stop the device.
"""

from __future__ import annotations

from edge.config import CameraConfig
from edge.device.sources import Frame, LatestFrameGrabber, SourceInfo, open_source


def _grabber(config: CameraConfig) -> LatestFrameGrabber:
    source = open_source(
        config.source, width=config.width, height=config.height, fps=config.fps, decode_threads=config.decode_threads
    )
    return LatestFrameGrabber(source, reconnect_max_s=config.reconnect_max_s)


class Camera:
    """What the loop reads frames from (`latest`, `ended`, `frames_dropped`, `stop`)."""

    def __init__(self, config: CameraConfig) -> None:
        self.config = config
        self._grabber = _grabber(config)  # a bad URI or option fails here, before anything opens
        self._dropped_before = 0  # frames dropped by the grabbers switched away from

    def start(self) -> Camera:
        """Open the source and start capturing; `SourceError` when it cannot be opened."""
        self._grabber.start()
        return self

    @property
    def info(self) -> SourceInfo:
        return self._grabber.source.info

    def latest(self, timeout: float | None = None) -> Frame | None:
        return self._grabber.latest(timeout)

    @property
    def ended(self) -> bool:
        return self._grabber.ended

    @property
    def frames_dropped(self) -> int:
        return self._dropped_before + self._grabber.frames_dropped

    def stop(self) -> None:
        self._grabber.stop()

    def reopen(self, config: CameraConfig) -> None:
        """Capture from `config` instead (call between frames, on the loop's thread).

        Raises `SourceError` when the new source cannot be opened, after opening the previous
        one again (whose own failure then raises instead).
        """
        self._grabber.stop()
        self._dropped_before += self._grabber.frames_dropped
        try:
            self._grabber = _grabber(config).start()
        except Exception:
            self._grabber = _grabber(self.config).start()
            raise
        self.config = config
