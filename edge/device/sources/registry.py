"""`open_source(uri)`: the URI scheme picks the source class.

| URI | source | live |
|---|---|---|
| `v4l2:/dev/video0`, `v4l2:0` | V4L2 camera (OpenCV) | yes |
| `0` | camera by index, OpenCV's default backend (a laptop) | yes |
| `gst:<pipeline>` | GStreamer pipeline ending in appsink (OpenCV) | yes |
| `rtsp://`, `rtsps://`, `http://`, `https://` | network stream (OpenCV + FFmpeg) | yes |
| `picam:0` | Raspberry Pi camera (Picamera2) | yes |
| `file:<path>`, `file:///abs/path`, or a bare path | video file (OpenCV + FFmpeg) | no |
| `/dev/video0` (a bare device path) | as `v4l2:/dev/video0` | yes |
| `dir:<folder>` | images in a folder, by name | no |

Live sources drop stale frames and reconnect; finite ones are read to the end, every frame.
A bare path with a word and a colon in front (`clips:1.mp4`) reads as a scheme: write `file:`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .base import FrameSource, SourceError, mask_uri

log = logging.getLogger(__name__)

OPTIONS = frozenset({"width", "height", "fps", "timeout_s", "decode_threads"})
"""Options `open_source` knows. Each kind uses some and ignores the others, so one camera config
can carry them whatever the URI says; a name outside this set is a typo, and an error."""

_CAMERA_OPTIONS = frozenset({"width", "height", "fps"})
_STREAM_OPTIONS = frozenset({"timeout_s", "decode_threads"})
_FILE_OPTIONS = frozenset({"decode_threads"})
_URL_SCHEMES = frozenset({"rtsp", "rtsps", "http", "https"})
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):(?://)?(.*)$", re.DOTALL)
INDEX = "index"  # the scheme `parse_uri` gives a bare camera number such as `0`


@dataclass(frozen=True)
class _Kind:
    build: Callable[[str, str, dict[str, Any]], FrameSource]
    live: bool
    options: frozenset[str]


def _opencv(kind_name: str) -> Callable[[str, str, dict[str, Any]], FrameSource]:
    def build(uri: str, target: str, options: dict[str, Any]) -> FrameSource:
        from .opencv import Kind, OpenCVSource

        kind = Kind[kind_name]
        where: str | int = target
        if kind in (Kind.V4L2, Kind.CAMERA) and not target.startswith("/"):
            where = _camera_number(uri, target)
        return OpenCVSource(uri, where, kind, **options)

    return build


def _images(uri: str, target: str, options: dict[str, Any]) -> FrameSource:
    from .images import ImageFolderSource

    return ImageFolderSource(uri, target)


def _picam(uri: str, target: str, options: dict[str, Any]) -> FrameSource:
    from .picamera2 import PiCamera2Source

    return PiCamera2Source(uri, _camera_number(uri, target), **options)


_KINDS: dict[str, _Kind] = {
    "v4l2": _Kind(_opencv("V4L2"), True, _CAMERA_OPTIONS),
    "gst": _Kind(_opencv("GSTREAMER"), True, frozenset()),
    "rtsp": _Kind(_opencv("STREAM"), True, _STREAM_OPTIONS),
    "rtsps": _Kind(_opencv("STREAM"), True, _STREAM_OPTIONS),
    "http": _Kind(_opencv("STREAM"), True, _STREAM_OPTIONS),
    "https": _Kind(_opencv("STREAM"), True, _STREAM_OPTIONS),
    "picam": _Kind(_picam, True, _CAMERA_OPTIONS | {"timeout_s"}),
    "file": _Kind(_opencv("FILE"), False, _FILE_OPTIONS),
    "dir": _Kind(_images, False, frozenset()),
}
SCHEMES = tuple(_KINDS)
_KINDS[INDEX] = _Kind(_opencv("CAMERA"), True, _CAMERA_OPTIONS)


def parse_uri(uri: str) -> tuple[str, str]:
    """Split `uri` into (scheme, target).

    `v4l2:/dev/video0` -> ("v4l2", "/dev/video0"); `rtsp://cam/1` -> ("rtsp", "rtsp://cam/1")
    (URLs stay whole); `file:///v/a.mp4` -> ("file", "/v/a.mp4"); a bare path -> ("file", path);
    `/dev/video0` -> ("v4l2", "/dev/video0"); `0` -> ("index", "0").
    Raises `SourceError` for an empty URI, an unknown scheme (listing the known ones) or a
    scheme with nothing after it.
    """
    text = uri.strip()
    if not text:
        raise SourceError("empty source URI: give e.g. v4l2:/dev/video0, rtsp://..., file:clip.mp4")
    if text.isdigit():
        return INDEX, text
    match = _SCHEME.match(text)
    if match is None:
        return ("v4l2" if text.startswith("/dev/video") else "file"), text
    scheme, rest = match.group(1).lower(), match.group(2)
    if scheme not in SCHEMES:
        raise SourceError(
            f"unknown source scheme {scheme!r} in {mask_uri(text)}: known are "
            f"{', '.join(s + ':' for s in SCHEMES)}, a camera number, or a file path"
        )
    if not rest:
        raise SourceError(f"source URI {mask_uri(text)!r} names nothing after {scheme}:")
    return scheme, text if scheme in _URL_SCHEMES else rest


def is_live(uri: str) -> bool:
    """True for cameras and streams (drop stale frames, reconnect), False for files and folders."""
    return _KINDS[parse_uri(uri)[0]].live


def open_source(uri: str, **options: Any) -> FrameSource:
    """Build the source for `uri`, not yet opened: use it as a context manager, call `open()`,
    or hand it to `LatestFrameGrabber`.

    options: `width`, `height`, `fps` (cameras), `timeout_s` (network streams and picam: how
    long a read may block), `decode_threads` (FFmpeg, for streams and files); None means the
    default.
    Raises `SourceError` for an unknown scheme or option, a camera that is not a number, or a
    missing optional package (picamera2), before anything is opened.
    """
    scheme, target = parse_uri(uri)
    given = {name: value for name, value in options.items() if value is not None}
    unknown = sorted(set(given) - OPTIONS)
    if unknown:
        raise SourceError(
            f"unknown option(s) {', '.join(unknown)} for {mask_uri(uri)}: known are {', '.join(sorted(OPTIONS))}"
        )
    kind = _KINDS[scheme]
    ignored = sorted(set(given) - kind.options)
    if ignored:
        log.debug("%s does not use option(s) %s", mask_uri(uri), ", ".join(ignored))
    return kind.build(uri, target, {k: v for k, v in given.items() if k in kind.options})


def _camera_number(uri: str, target: str) -> int:
    if not target.isdigit():
        raise SourceError(f"{mask_uri(uri)}: expected a camera number, got {target!r}")
    return int(target)
