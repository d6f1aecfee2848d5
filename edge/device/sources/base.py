"""What every frame source gives the loop: `Frame`, `SourceInfo`, `FrameSource`, `SourceError`."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, runtime_checkable

import numpy as np

from edge.redact import mask_uri as mask_uri  # re-exported: sources mask URIs in logs and errors


class SourceError(RuntimeError):
    """A source cannot be opened or read; the message names the URI and the problem."""


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """One camera or file frame.

    image: (H, W, 3) uint8, RGB order.
    index: frame number from the source, counted from 0 by the source object (it keeps
        counting across reconnects, so it never goes backwards for one source).
    captured_at: `time.monotonic()` when the source got the frame (read, or grab of a
        `GrabbingSource`), before any copy; latency is measured from here.
    wall_time: `time.time()` at the same moment, for timestamps in events.
    """

    image: np.ndarray
    index: int
    captured_at: float
    wall_time: float


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What is known about a source; sizes and rates are None until opened or when unknown.

    uri: the source URI with any password masked, safe to log and publish.
    live: True for cameras and streams (drop stale frames), False for files and folders.
    frame_count: frames (or images) in a finite source as its container reports them.
    """

    uri: str
    live: bool
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    frame_count: int | None = None


@runtime_checkable
class FrameSource(Protocol):
    """A camera, stream, video file or image folder, read one frame at a time.

    Concrete sources subclass this protocol to inherit the context manager (open on enter,
    close on exit). `read` may be called only between `open` and `close`, from one thread.
    """

    @property
    def info(self) -> SourceInfo: ...

    def open(self) -> None:
        """Open the device, stream or file; raise `SourceError` saying why it cannot be."""
        ...

    def read(self, out: np.ndarray | None = None) -> Frame | None:
        """Return the next frame, or None when the source has ended.

        out: a buffer to write the RGB image into, reused to avoid an allocation per frame.
        It is used only when its shape fits the frame; otherwise a new array is returned, so
        always use `frame.image`, never `out`. The image is `out` or a new array the caller
        owns, never a buffer the source keeps. Raises `SourceError` when a read fails.
        """
        ...

    def close(self) -> None:
        """Release the device; safe to call twice or when `open` failed."""
        ...

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@runtime_checkable
class GrabbingSource(FrameSource, Protocol):
    """A source that takes the next frame (`grab`) apart from copying it out (`retrieve`).

    Waiting for a camera's next frame and decoding it is the long part; the copy into an image
    buffer is short. Split, the capture thread waits without holding a buffer and claims one
    only for the copy, so a live source needs two buffers instead of three
    (`LatestFrameGrabber`). `read` is `grab` then `retrieve`.
    """

    def grab(self) -> bool:
        """Wait for the next frame and keep it inside the source (decoded, not copied).

        False when the source has ended; raises `SourceError` when it fails.
        """
        ...

    def retrieve(self, out: np.ndarray | None = None) -> Frame:
        """The frame of the last `grab` in RGB, into `out` when it fits, as `read` does; once."""
        ...

    def read(self, out: np.ndarray | None = None) -> Frame | None:
        if not self.grab():
            return None
        return self.retrieve(out)
