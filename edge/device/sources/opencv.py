"""Cameras, streams and video files read through OpenCV's VideoCapture.

URIs (parsed by `edge.device.sources.open_source`):

- `v4l2:/dev/video0`, `v4l2:0`: a V4L2 camera by device path or index (Linux).
- `0`: a camera by index with OpenCV's default backend (a development laptop).
- `gst:<pipeline>`: a GStreamer pipeline ending in `appsink`; needs an OpenCV built with
  GStreamer (the pip wheels are not; on a Jetson use the system `python3-opencv`).
  Jetson CSI camera, scaled on the GPU and handed over as BGR, newest frame only::

      gst:nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM),width=1280,height=720,
      framerate=30/1,format=NV12 ! nvvidconv flip-method=0 ! video/x-raw,width=640,height=360,
      format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1

  (one line in practice). Sizes and rate are set in the pipeline, not with width/height/fps.
- `rtsp://`, `rtsps://`, `http://`, `https://`: network streams through FFmpeg, with open
  and read timeouts so a dead camera raises instead of hanging the capture thread.
- `file:<path>` or a bare path: a video file, read once to the end. A file without a single
  frame is refused at open. A damaged region is skipped: where the decoder fails before the
  last frame the container reports, the reader seeks past the damage, logs a warning and counts
  the frames lost in `frames_skipped`.

Streams and files are decoded by FFmpeg with `decode_threads` threads (default 1): inference
already keeps every core busy, and each extra decoder thread holds its own reference frames
(about 8 MB more at 1080p) and adds a frame of delay, for no gain in loop speed (measured with
`edge bench`, docs/pages/performance.md, "Performance").
"""

from __future__ import annotations

import logging
import os
import time
from enum import Enum

import cv2
import numpy as np

from .base import Frame, GrabbingSource, SourceError, SourceInfo, mask_uri
from .convert import bgr_to_rgb_in_place

log = logging.getLogger(__name__)


class Kind(Enum):
    """What sits behind the URI; decides the backend, the checks and the error wording."""

    V4L2 = "v4l2"
    CAMERA = "camera"  # by index, OpenCV's default backend
    GSTREAMER = "gstreamer"
    STREAM = "stream"
    FILE = "file"


_BACKENDS = {
    Kind.V4L2: cv2.CAP_V4L2,
    Kind.CAMERA: cv2.CAP_ANY,
    Kind.GSTREAMER: cv2.CAP_GSTREAMER,
    Kind.STREAM: cv2.CAP_FFMPEG,
    Kind.FILE: cv2.CAP_FFMPEG,
}


class OpenCVSource(GrabbingSource):
    """One `cv2.VideoCapture`, converted to RGB frames.

    target: a device path, camera index, pipeline, URL or file path, as OpenCV takes it.
    width, height, fps: requested from cameras (`Kind.V4L2`, `Kind.CAMERA`) only; a camera
        may pick the nearest mode it supports, and `info` reports what it gave.
    timeout_s: open and read timeout for network streams.
    decode_threads: FFmpeg decoder threads for streams and files; 0 lets FFmpeg pick (one per
        core). Ignored by OpenCV older than 4.6, which cannot set it.
    """

    def __init__(
        self,
        uri: str,
        target: str | int,
        kind: Kind,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        timeout_s: float = 10.0,
        decode_threads: int = 1,
    ) -> None:
        self._uri = mask_uri(uri)
        self._target = target
        self._kind = kind
        self._backend = _BACKENDS[kind]
        self._request = (width, height, fps)
        self._timeout_ms = int(timeout_s * 1000)
        self._decode_threads = decode_threads
        self._cap: cv2.VideoCapture | None = None
        self._next_index = 0
        self._grabbed_at: tuple[float, float] | None = None  # monotonic and wall time of the last grab
        self._primed = False  # a file's first frame, grabbed at open to prove there is one
        self.frames_skipped = 0  # frames of a file lost to damage the decoder could not read
        self._info = SourceInfo(uri=self._uri, live=kind is not Kind.FILE)

    @property
    def info(self) -> SourceInfo:
        return self._info

    def open(self) -> None:
        self.close()
        self._check_before_open()
        cap = cv2.VideoCapture(self._target, self._backend, self._open_params())
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {self._uri}: {self._why_not_opened()}")
        if self._is_camera:
            self._apply_camera_request(cap)
        self._cap = cap
        self._info = self._read_info(cap)
        if self._kind is Kind.FILE:
            self._primed = self.grab()
            if not self._primed:
                self.close()
                raise SourceError(f"{self._uri} has no frames (an empty or unreadable video)")
        log.info(
            "opened %s: %sx%s at %s fps",
            self._uri,
            self._info.width,
            self._info.height,
            self._info.fps or "unknown",
        )

    def grab(self) -> bool:
        cap = self._opened()
        if self._primed:
            self._primed = False
            return True
        if not cap.grab() and not self._skip_damage(cap):
            return False
        self._grabbed_at = (time.monotonic(), time.time())
        return True

    def _skip_damage(self, cap: cv2.VideoCapture) -> bool:
        """A file that fails before its last frame: seek frame by frame past the damage."""
        total = self._info.frame_count
        if self._kind is not Kind.FILE or total is None or self._next_index >= total:
            return False
        for index in range(self._next_index + 1, total):
            cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            if cap.grab():
                lost = index - self._next_index
                log.warning(
                    "%s: frames %d to %d unreadable (damaged file); %d skipped, going on at frame %d",
                    self._uri,
                    self._next_index,
                    index - 1,
                    lost,
                    index,
                )
                self.frames_skipped += lost
                self._next_index = index
                return True
        log.warning("%s: unreadable from frame %d to its end (damaged file)", self._uri, self._next_index)
        self.frames_skipped += total - self._next_index
        return False

    def retrieve(self, out: np.ndarray | None = None) -> Frame:
        cap = self._opened()
        # OpenCV writes the BGR image into `out` when its shape fits (else into a new array),
        # and it is turned into RGB where it lies: no second full-frame buffer.
        ok, image = cap.retrieve(out)
        if not ok or image is None or self._grabbed_at is None:
            raise SourceError(f"{self._uri}: no grabbed frame to retrieve")
        (captured_at, wall_time), self._grabbed_at = self._grabbed_at, None
        frame = Frame(bgr_to_rgb_in_place(image), self._next_index, captured_at, wall_time)
        self._next_index += 1
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._grabbed_at = None
        self._primed = False

    def _opened(self) -> cv2.VideoCapture:
        if self._cap is None:
            raise SourceError(f"{self._uri} is not open")
        return self._cap

    @property
    def _is_camera(self) -> bool:
        return self._kind in (Kind.V4L2, Kind.CAMERA)

    def _open_params(self) -> list[int]:
        """VideoCapture open parameters: timeouts for streams, decoder threads for FFmpeg."""
        params: list[int] = []
        if self._kind is Kind.STREAM:
            timeout = self._timeout_ms
            params += [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout]
        if self._kind in (Kind.STREAM, Kind.FILE) and hasattr(cv2, "CAP_PROP_N_THREADS"):
            params += [cv2.CAP_PROP_N_THREADS, self._decode_threads]
        return params

    def _check_before_open(self) -> None:
        """Catch the common mistakes with a precise message before OpenCV's vague failure."""
        where = self._target if isinstance(self._target, str) else f"/dev/video{self._target}"
        if self._kind is Kind.FILE and not os.path.exists(where):
            raise SourceError(f"cannot open {self._uri}: no such file")
        if self._kind is Kind.V4L2 and not os.path.exists(where):
            raise SourceError(f"cannot open {self._uri}: no such device ({where})")
        if self._kind is Kind.GSTREAMER:
            if not cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER):
                raise SourceError(
                    f"cannot open {self._uri}: this OpenCV has no GStreamer support "
                    "(pip wheels lack it; use the system python3-opencv, e.g. on a Jetson)"
                )
            if "appsink" not in where:
                raise SourceError(f"cannot open {self._uri}: the pipeline must end in appsink")

    def _why_not_opened(self) -> str:
        if self._is_camera:
            return "device busy, not a camera, or no permission (is the user in group video?)"
        if self._kind is Kind.STREAM:
            return "no answer, refused, or not a video stream (check address and credentials)"
        if self._kind is Kind.FILE:
            return "not a video OpenCV can decode"
        return "the pipeline did not start (run it with gst-launch-1.0 to see why)"

    def _apply_camera_request(self, cap: cv2.VideoCapture) -> None:
        width, height, fps = self._request
        for prop, value in (
            (cv2.CAP_PROP_FRAME_WIDTH, width),
            (cv2.CAP_PROP_FRAME_HEIGHT, height),
            (cv2.CAP_PROP_FPS, fps),
        ):
            if value is not None and not cap.set(prop, float(value)):
                log.warning("%s refused property %d = %s", self._uri, prop, value)

    def _read_info(self, cap: cv2.VideoCapture) -> SourceInfo:
        fps = cap.get(cv2.CAP_PROP_FPS)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        return SourceInfo(
            uri=self._uri,
            live=self._info.live,
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) or None,
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) or None,
            # Streams often report 0 or a timebase (90000) instead of a rate.
            fps=fps if 0 < fps <= 1000 else None,
            frame_count=count if self._kind is Kind.FILE and count > 0 else None,
        )
