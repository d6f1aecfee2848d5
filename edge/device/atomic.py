"""Replace a file in the state folder so that a crash leaves the old or the new one, never a mix.

A remote configuration or a pushed gallery is written to a temporary file beside its target
(same filesystem), flushed to disk, renamed over the target (atomic on POSIX) and the folder is
flushed too, so the rename itself survives a power cut. A reader sees the whole old file or the
whole new one at any moment, also after a SIGKILL between any two of these steps.
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


def replace(temporary: Path, path: Path) -> None:
    """Rename `temporary` over `path` and flush the folder, so the new name is durable."""
    os.replace(temporary, path)
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` by `data`: temporary file, fsync, rename, fsync of the folder."""
    replace(temporary_beside(path, data), path)


def remove_temporaries(path: Path) -> None:
    """Delete the temporary files beside `path` that a killed process left (`temporary_beside`)."""
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        leftover.unlink(missing_ok=True)
