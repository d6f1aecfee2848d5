"""`LatestFrameGrabber`: a capture thread that keeps only the newest frame for the loop.

The loop must always work on the newest frame (a stale backlog is never worth processing), so there is no queue: a
one-slot mailbox holds the last frame read, and a frame replaced before the loop took it is
counted in `frames_dropped`, apart from the frames the loop processed (docs/pages/device.md, "Counters").

Buffers: images are written into a pool of arrays, reused frame after frame instead of
allocating one per frame; each is a full frame (6 MB at 1080p). Two are enough: one held by the
loop (the frame `latest()` returned last) and one waiting in the mailbox or being filled.
- A finite source's capture thread reads the next frame only once the loop has taken the
  previous one, which still overlaps decoding with processing.
- A live source's capture thread must never stop draining the camera. With a `GrabbingSource`
  (OpenCV, Picamera2) it waits for the next frame without a buffer (`grab`), then copies it
  (`retrieve`) into a free buffer or, when there is none, into the buffer of the frame waiting in
  the mailbox, which is stale by then and counted as dropped; the loop finds the mailbox empty
  only for that copy (about 2 ms at 1080p from FFmpeg; OpenCV's V4L2 backend also decodes a
  USB camera's MJPEG there), and what it then gets is the newer frame. This happens only while
  the loop is slower than the camera. A source that can only `read` needs a third buffer.
An array goes back to the pool only when the loop calls `latest()` again or a newer frame
replaces it in the mailbox. So a frame's image stays valid until the next `latest()` call, and no
longer: copy what must outlive it (chips cut out of the frame are new arrays anyway).
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

import numpy as np

from edge.service import ServiceThread

from .base import Frame, FrameSource, GrabbingSource

log = logging.getLogger(__name__)

_POLL_S = 0.25  # how often a waiting capture thread looks at a stop event set from outside


class LatestFrameGrabber:
    """Reads `source` on a thread named "camera" and hands the loop its newest frame.

    live: True (cameras, streams) drops a frame the loop has not taken when a newer one comes,
        and reconnects when the source fails or ends, waiting `reconnect_initial_s` and then
        twice as long each time up to `reconnect_max_s`. False (files, folders) never drops:
        the capture thread waits until the loop took the previous frame, so every frame is
        processed and results are reproducible; the end of the source, or an error, ends it.
        None takes `source.info.live`.
    stop_event: set it (or call `stop()`) to end capture; shared with the loop if given.
    One consumer thread calls `latest()`.

    Counters are plain ints, written under the grabber's lock: `frames_read` (frames put in
    the mailbox), `frames_taken` (returned by `latest()`), `frames_dropped` (replaced before
    they were taken) and `reconnects` (attempts to reopen a lost source). Once capture stops,
    frames_read == frames_taken + frames_dropped + (1 if a frame is still waiting).
    """

    def __init__(
        self,
        source: FrameSource,
        *,
        live: bool | None = None,
        stop_event: threading.Event | None = None,
        reconnect_initial_s: float = 1.0,
        reconnect_max_s: float = 30.0,
    ) -> None:
        self.source = source
        self._grabbing = source if isinstance(source, GrabbingSource) else None
        self.live = source.info.live if live is None else live
        self.stop_event = stop_event or threading.Event()
        self.reconnect_initial_s = reconnect_initial_s
        self.reconnect_max_s = reconnect_max_s
        self.frames_read = 0
        self.frames_taken = 0
        self.frames_dropped = 0
        self.reconnects = 0
        self.error: str | None = None  # why a finite source ended early, if it did
        self._cond = threading.Condition()
        self._slot: Frame | None = None  # the mailbox
        self._held: Frame | None = None  # last frame returned by latest()
        self._free: list[np.ndarray] = []  # pool of image buffers not in use
        self._finished = False
        self._thread = ServiceThread("camera", self._run, stopping=self.stop_event, wake=self._wake)

    # The loop's side -----------------------------------------------------------------------

    def start(self) -> LatestFrameGrabber:
        """Start capturing. The source is opened here, so a bad path, a missing camera or an
        unreachable stream raises `SourceError` at once (a typo must not become a silent retry
        loop); once running, a live source that fails is reopened on the thread with backoff."""
        self.source.open()
        self._thread.start()
        return self

    def latest(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not returned before, waiting up to `timeout` seconds for one.

        None when none came in time, or at once when capture has finished and nothing waits.
        The previous frame's image is recycled by this call (see the module docstring).
        """
        with self._cond:
            if self._held is not None:
                self._free.append(self._held.image)
                self._held = None
            self._cond.wait_for(lambda: self._slot is not None or self._finished, timeout)
            frame, self._slot = self._slot, None
            if frame is None:
                return None
            self._held = frame
            self.frames_taken += 1
            self._cond.notify_all()
            return frame

    @property
    def ended(self) -> bool:
        """True when capture has finished (source ended, failed or stopped) and no frame waits."""
        return self._finished and self._slot is None

    @property
    def running(self) -> bool:
        return self._thread.running

    def stop(self, timeout: float = 5.0) -> None:
        """Set the stop event and wait up to `timeout` seconds for the capture thread, which
        closes the source (one blocked in a read is named in a warning and left to end)."""
        self._thread.stop(timeout)

    def __enter__(self) -> LatestFrameGrabber:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # The capture thread ------------------------------------------------------------------

    def _wake(self) -> None:
        """Rouse a capture thread waiting for the loop to take a frame (it then sees the stop)."""
        with self._cond:
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            if self.live:
                self._capture_live()
            else:
                self._capture_finite()
        finally:
            try:
                self.source.close()
            except Exception:
                log.exception("closing %s failed", self.source.info.uri)
            with self._cond:
                self._finished = True
                self._cond.notify_all()

    def _capture_finite(self) -> None:
        uri = self.source.info.uri
        while self._wait_for_empty_mailbox():
            try:
                frame = self._read()
            except Exception as exc:
                self.error = str(exc) or type(exc).__name__
                log.error("%s ended early: %s", uri, self.error)
                return
            if frame is None:
                log.info("%s ended after %d frames", uri, self.frames_read)
                return
            self._publish(frame)

    def _capture_live(self) -> None:
        """Read until stopped; on any failure close, wait (doubling), reopen, and say so."""
        delay = self.reconnect_initial_s
        is_open, lost = True, False  # opened by start()
        while not self.stop_event.is_set():
            try:
                if not is_open:
                    self.source.open()
                    is_open = True
                frame = self._read_newest()
                why = "the stream ended"
            # Drivers raise all sorts (RuntimeError from picamera2, cv2.error, OSError): a
            # camera must come back from any of them, so every failure is a reason to retry.
            except Exception as exc:
                frame, why = None, str(exc) or type(exc).__name__
            if frame is None:
                self._close_quietly()
                is_open, lost = False, True
                log.warning("camera lost: %s; retrying in %g s", why, delay)
                if self.stop_event.wait(delay):
                    return
                delay = min(delay * 2, self.reconnect_max_s)
                self.reconnects += 1
                continue
            if lost:
                log.info("camera back: %s", self.source.info.uri)
                lost, delay = False, self.reconnect_initial_s
            self._publish(frame)

    def _read(self) -> Frame | None:
        """Read into a pooled buffer; a buffer the source could not use is let go."""
        with self._cond:
            out = self._free.pop() if self._free else None
        frame = self.source.read(out)
        if out is not None and frame is None:
            with self._cond:
                self._free.append(out)
        return frame

    def _read_newest(self) -> Frame | None:
        """Live: wait for the next frame holding no buffer, then copy it into a free one or
        into the one of the frame still waiting in the mailbox (replaced anyway: dropped)."""
        if self._grabbing is None:
            return self._read()
        if not self._grabbing.grab():
            return None
        with self._cond:
            if not self._free and self._slot is not None:
                self._free.append(self._slot.image)
                self._slot = None
                self.frames_dropped += 1
            out = self._free.pop() if self._free else None
        return self._grabbing.retrieve(out)

    def _wait_for_empty_mailbox(self) -> bool:
        """Finite sources: wait until the loop took the last frame; False once stopped."""
        with self._cond:
            while self._slot is not None and not self.stop_event.is_set():
                self._cond.wait(_POLL_S)
            return not self.stop_event.is_set()

    def _publish(self, frame: Frame) -> None:
        with self._cond:
            if self._slot is not None:
                self._free.append(self._slot.image)
                self.frames_dropped += 1
            self._slot = frame
            self.frames_read += 1
            self._cond.notify_all()

    def _close_quietly(self) -> None:
        try:
            self.source.close()
        except Exception:
            log.exception("closing %s failed", self.source.info.uri)
