"""Replace a file so that a crash leaves the old or the new one, never a mix.

A remote configuration, a pushed gallery's state, the counters' totals, a gallery bundle or a
whole gallery is written to a temporary file beside its target (same filesystem), flushed to
disk, renamed over the target (atomic on POSIX) and the folder is flushed too, so the rename
itself survives a power cut. A reader sees the whole old file or the whole new one at any
moment, also after a SIGKILL between any two of these steps.

Shared by the device and the gallery (which must not import the device), so it imports nothing
from `edge`.
"""

from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path


def temporary_beside(path: Path, data: bytes) -> Path:
    """`data` in a new private (0600) file beside `path`, flushed to disk; the caller renames
    it over `path` (`replace`) or removes it."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def fsync(path: Path) -> None:
    """Flush `path` to disk: a file written by other means than `temporary_beside` (a SQLite
    database built beside its target), or a folder."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace(temporary: Path, path: Path) -> None:
    """Rename `temporary` (flushed to disk already) over `path` and flush the folder, so the new
    name is durable."""
    os.replace(temporary, path)
    fsync(path.parent)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` by `data`: temporary file, fsync, rename, fsync of the folder. A failure
    leaves `path` as it was and no temporary file behind."""
    temporary = temporary_beside(path, data)
    try:
        replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)  # gone already if only the folder's fsync failed
        raise


def remove_temporaries(path: Path) -> None:
    """Delete the temporary files beside `path` that a killed process left (`temporary_beside`)."""
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        leftover.unlink(missing_ok=True)
