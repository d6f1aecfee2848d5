"""`dir:<folder>`: every image in a folder, sorted by file name, one frame each.

Useful for enrolment batches and for replaying stills through the loop. A file that does not
decode is logged, counted in `skipped` and passed over, so one bad upload does not stop a run.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from edge.vision.image import ImageError, read_bgr

from .base import Frame, FrameSource, SourceError, SourceInfo
from .convert import bgr_to_rgb

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})


class ImageFolderSource(FrameSource):
    """Images of one folder (not its subfolders) in name order; ends after the last one.

    `Frame.index` is the image's position in `paths`, so a skipped file leaves a gap and
    `paths[frame.index]` names the file a frame came from.
    """

    def __init__(self, uri: str, folder: str | Path) -> None:
        self._uri = uri
        self._folder = Path(folder)
        self.paths: list[Path] = []
        self.skipped = 0
        self._next = 0
        self._info = SourceInfo(uri=uri, live=False)

    @property
    def info(self) -> SourceInfo:
        return self._info

    def open(self) -> None:
        if not self._folder.is_dir():
            raise SourceError(f"cannot open {self._uri}: no such folder")
        self.paths = sorted(
            (p for p in self._folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
            key=lambda p: p.name,
        )
        if not self.paths:
            raise SourceError(f"cannot open {self._uri}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in it")
        self._next = 0
        self.skipped = 0
        self._info = SourceInfo(uri=self._uri, live=False, frame_count=len(self.paths))

    def read(self, out: np.ndarray | None = None) -> Frame | None:
        while self._next < len(self.paths):
            index, path = self._next, self.paths[self._next]
            self._next += 1
            try:
                bgr = read_bgr(path)
            except ImageError as e:
                self.skipped += 1
                log.warning("skipping: %s (%d skipped so far)", e, self.skipped)
                continue
            return Frame(bgr_to_rgb(bgr, out), index, time.monotonic(), time.time())
        return None

    def close(self) -> None:
        """Nothing to release: files are opened and closed by each read."""
