"""Reading a file an operator named: a regular file only, and no more than a stated size.

A device node (`/dev/zero`) or a FIFO named by mistake would otherwise be read until memory runs
out, or wait for a writer for ever; a huge file would be read whole before any check.
"""

from __future__ import annotations

import os
import stat


class FileRefused(ValueError):
    """The path is not a regular file, or is larger than the limit; the text completes "PATH ..."."""


class TooLarge(FileRefused):
    pass


def read_regular_file(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of `path` if it is a regular file of at most `limit` bytes; `FileRefused` if not,
    `OSError` (FileNotFoundError, PermissionError, ...) when it cannot be opened."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO would wait for a writer
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileRefused("is not a regular file")
        with open(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)  # not the size from fstat: the file may grow meanwhile
    finally:
        os.close(fd)
    if len(data) > limit:
        raise TooLarge(f"is larger than {limit:,} bytes ({limit / 2**20:g} MiB)")
    return data
