"""Enrolled people's names for the alerts page, read from the gallery files the console is given
(`edge console serve --gallery FILE`): a match event carries only the opaque identity id, and the
operator needs the name to compare with the person in front of them. Each file is read again
when it changes (the administrator enrolled or removed someone)."""

from __future__ import annotations

import logging
from pathlib import Path

from edge.config import load_settings
from edge.device.parts import open_gallery
from edge.gallery import GalleryError

log = logging.getLogger(__name__)


class Names:
    """identity id -> name over every given gallery (the first file that has the id wins)."""

    def __init__(self, galleries: list[Path]) -> None:
        self._galleries = galleries
        self._stamps: tuple[tuple[int, int], ...] = ()
        self._names: dict[str, str] = {}
        self._settings = load_settings()
        self._read()  # a bad file stops the start, with its reason

    def of(self, identity_id: str) -> str | None:
        stamps = self._stamp()
        if stamps != self._stamps:
            try:
                self._read()
            except (GalleryError, OSError) as e:  # alerts go on with the names last read
                self._stamps = stamps
                log.warning("gallery names not re-read (%s): showing the names read before", e)
        return self._names.get(identity_id)

    def _stamp(self) -> tuple[tuple[int, int], ...]:
        stamps = []
        for path in self._galleries:
            try:
                stat = path.stat()
            except OSError:
                stamps.append((0, 0))
                continue
            stamps.append((stat.st_mtime_ns, stat.st_size))
        return tuple(stamps)

    def _read(self) -> None:
        names: dict[str, str] = {}
        stamps = self._stamp()
        for path in reversed(self._galleries):
            with open_gallery(self._settings, path) as store:
                names.update({i.identity_id: i.name for i in store.identities()})
        self._names, self._stamps = names, stamps
