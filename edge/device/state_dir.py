"""The device's state folder (outbox, counters): private to the device, one process at a time.

The outbox holds identity ids and times, so the folder is the owner's only (0700) and so is
every file in it (0600). Two processes on one folder would share one MQTT client id (each
connect throws the other off), send events twice and overwrite each other's counters, so the
folder is locked (`flock` on `lock`, which also records the holder's PID) for the lifetime of
the process; the kernel releases the lock when the process ends, however it ends.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from edge.config import ConfigError

LOCK_NAME = "lock"


class StateDirError(ConfigError):
    """The state folder cannot be used (a file, not creatable, or held by another process)."""


def private_file(path: Path) -> int:
    """Open `path` for reading and writing, created 0600 if absent; returns the descriptor."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)  # a file made by an older version, or under a looser umask
    return fd


def lock_state_dir(path: Path) -> IO[str]:
    """Create `path` (0700) if needed and lock it; the lock holds until the file returned is closed."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)
    except FileExistsError:
        raise StateDirError(f"state folder {path} is a file, not a folder: set device.state_dir to a folder") from None
    except OSError as e:
        raise StateDirError(f"cannot create state folder {path}: {e.strerror or e}") from None
    lock = os.fdopen(private_file(path / LOCK_NAME), "r+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = lock.read().strip() or "unknown"
        lock.close()
        raise StateDirError(
            f"state folder {path} is in use by another edge process (pid {holder}): run one device per state folder"
        ) from None
    try:  # the PID is for the message above only: a full disk must not stop the start here
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
    except OSError:
        pass
    return lock
