"""Frame sources chosen by a URI, and the capture thread that feeds the loop the newest frame.

    with LatestFrameGrabber(open_source("v4l2:/dev/video0", width=640, height=480)) as grab:
        while not stop.is_set():
            frame = grab.latest(timeout=1.0)
            if frame is None:
                if grab.ended:
                    break
                continue
            ...  # frame.image is RGB, valid until the next latest() call

See `registry` for the URI schemes.
"""

from __future__ import annotations

from .base import Frame, FrameSource, GrabbingSource, SourceError, SourceInfo, mask_uri
from .grabber import LatestFrameGrabber
from .registry import OPTIONS, SCHEMES, is_live, open_source, parse_uri

__all__ = [
    "OPTIONS",
    "SCHEMES",
    "Frame",
    "FrameSource",
    "GrabbingSource",
    "LatestFrameGrabber",
    "SourceError",
    "SourceInfo",
    "is_live",
    "mask_uri",
    "open_source",
    "parse_uri",
]
