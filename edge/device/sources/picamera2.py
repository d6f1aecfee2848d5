"""`picam:N`: a Raspberry Pi camera through Picamera2 (libcamera).

`picamera2` is imported here only, and only when such a source is built: importing it has side
effects (it sets environment variables and probes /dev/video*), and it exists only on a Pi.

Colour order: picamera2 names formats after libcamera/DRM, which read them as little-endian
words, so "RGB888" holds bytes in [B, G, R] order in memory ("BGR888" would be [R, G, B]): the
Picamera2 manual's list of formats says so, and picamera2's own `Helpers.make_image`
(picamera2/request.py) hands RGB888 to PIL as raw mode "BGR". We ask for "RGB888", the packed
24-bit format documented for the main stream, and turn BGR into RGB with one `cv2.cvtColor`
read straight from the mapped camera buffer: that pass is also the copy that lets the request
go back to the camera at once, so no extra copy. `grab` takes the completed request and
`retrieve` makes that copy and releases it, so the capture thread holds a camera buffer only
from one to the other.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from .base import Frame, GrabbingSource, SourceError, SourceInfo
from .convert import bgr_to_rgb

log = logging.getLogger(__name__)


def _import_picamera2(uri: str) -> tuple[Any, Any]:
    """(Picamera2, MappedArray), or a `SourceError` that says what to install."""
    try:
        from picamera2 import MappedArray, Picamera2
    except ImportError as exc:
        raise SourceError(
            f"{uri} needs picamera2: install edge[picamera] on a Raspberry Pi "
            "(or `sudo apt install python3-picamera2` and create the venv with "
            "--system-site-packages, which keeps picamera2 matched to the system libcamera)"
        ) from exc
    return Picamera2, MappedArray


class PiCamera2Source(GrabbingSource):
    """Camera `camera_num` with one "main" stream sized for the detector.

    width, height: size of the main stream; ask for what the loop needs (the detector's input
        is resized from it and face chips are cut from it), not the sensor's full size, so the
        ISP scales for free instead of the CPU. libcamera may round it; `info` says what it gave.
    fps: frame rate to request (the "FrameRate" control), or None for the camera's default.
    timeout_s: how long a capture may wait before it fails, so a stalled camera is reported and
        reopened (picamera2 versions without capture timeouts wait indefinitely).
    """

    def __init__(
        self,
        uri: str,
        camera_num: int,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self._picamera2, self._mapped_array = _import_picamera2(uri)
        self._uri = uri
        self._num = camera_num
        self._size = (width or 640, height or 480)
        self._fps = fps
        self._timeout_s = timeout_s
        self._cam: Any = None
        self._next_index = 0
        self._request: Any = None  # the grabbed, not yet retrieved, completed request
        self._grabbed_at = (0.0, 0.0)  # monotonic and wall time of the last grab
        self._info = SourceInfo(uri=uri, live=True)

    @property
    def info(self) -> SourceInfo:
        return self._info

    def open(self) -> None:
        self.close()
        try:
            cam = self._picamera2(self._num)
        except Exception as exc:  # IndexError or RuntimeError, depending on the version
            raise SourceError(f"cannot open {self._uri}: no camera {self._num} ({exc})") from exc
        try:
            controls = {"FrameRate": float(self._fps)} if self._fps else {}
            config = cam.create_video_configuration(main={"size": self._size, "format": "RGB888"}, controls=controls)
            cam.configure(config)
            cam.start()
        except Exception as exc:
            cam.close()
            raise SourceError(f"cannot start {self._uri}: {exc}") from exc
        self._cam = cam
        width, height = cam.camera_config["main"]["size"]
        self._info = SourceInfo(uri=self._uri, live=True, width=width, height=height, fps=self._fps)
        log.info("opened %s: %sx%s", self._uri, width, height)

    def grab(self) -> bool:
        if self._cam is None:
            raise SourceError(f"{self._uri} is not open")
        self._release_request()  # a frame grabbed and never retrieved goes back to the camera
        try:
            self._request = self._cam.capture_request(wait=self._timeout_s)
        except Exception as exc:
            raise SourceError(f"{self._uri} capture failed: {exc}") from exc
        self._grabbed_at = (time.monotonic(), time.time())
        return True

    def retrieve(self, out: np.ndarray | None = None) -> Frame:
        request, self._request = self._request, None
        if request is None:
            raise SourceError(f"{self._uri}: no grabbed frame to retrieve")
        try:
            with self._mapped_array(request, "main") as mapped:
                image = bgr_to_rgb(mapped.array, out)
        except Exception as exc:
            raise SourceError(f"{self._uri} capture failed: {exc}") from exc
        finally:
            request.release()  # the copy is made: the camera may refill its buffer
        captured_at, wall_time = self._grabbed_at
        frame = Frame(image, self._next_index, captured_at, wall_time)
        self._next_index += 1
        return frame

    def close(self) -> None:
        if self._cam is None:
            return
        self._release_request()
        cam, self._cam = self._cam, None
        try:
            cam.stop()
        finally:
            cam.close()

    def _release_request(self) -> None:
        request, self._request = self._request, None
        if request is not None:
            request.release()
