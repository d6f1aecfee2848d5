"""A boot partition as the hooking logic sees it: a few file operations at its top level.

Two kinds stand behind it: a FAT partition inside a card image file (`mtools.ImageBoot`, for
`edge fleet image`) and a card already written and mounted on the operator's computer
(`FolderBoot`, for `edge fleet card`). Names are relative to the partition's top and, as on FAT,
matched without regard to case.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Protocol

from edge.central.fleet.card.errors import CardError


class BootPartition(Protocol):
    """What hooking a first-boot script and copying a bundle need of a FAT partition."""

    def describe(self) -> str:
        """The partition in the operator's words, for messages."""
        ...

    def read_text(self, name: str) -> str | None:
        """A top-level file's text (UTF-8, line endings kept); None where it does not exist."""
        ...

    def write_text(self, name: str, text: str) -> None: ...

    def put_file(self, source: Path, name: str) -> None: ...

    def put_tree(self, source: Path, name: str) -> None:
        """Copy the folder `source` to `name`, replacing whatever `name` held."""
        ...

    def cluster_bytes(self) -> int: ...

    def free_bytes(self) -> int: ...

    def used_bytes(self, name: str) -> int:
        """Bytes that removing `name` (a file or a folder, 0 if absent) would free."""
        ...


def clusters_for(path: Path, cluster: int) -> int:
    """Bytes a file or a folder takes on a FAT file system with clusters of `cluster` bytes:
    each file rounded up to whole clusters, each folder one cluster for its entries."""
    if path.is_file():
        return max(1, -(-path.stat().st_size // cluster)) * cluster
    total = cluster
    for entry in path.iterdir():
        total += clusters_for(entry, cluster)
    return total


class FolderBoot:
    """A boot partition mounted on this computer (`edge fleet card --boot PATH`): plain file operations."""

    def __init__(self, root: Path):
        if not root.is_dir():
            raise CardError(f"--boot {root}: not a folder (give where the card's boot partition is mounted)")
        if not os.access(root, os.W_OK):
            raise CardError(f"--boot {root}: not writable by you (is the card's lock switch on, or mounted read-only?)")
        self.root = root

    def describe(self) -> str:
        return str(self.root)

    def _find(self, name: str) -> Path | None:
        for entry in self.root.iterdir():
            if entry.name.lower() == name.lower():
                return entry
        return None

    def read_text(self, name: str) -> str | None:
        path = self._find(name)
        if path is None or not path.is_file():
            return None
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()

    def write_text(self, name: str, text: str) -> None:
        """Through a file beside it and a rename, so a pulled card holds the old text or the new."""
        target = self._find(name) or self.root / name
        partial = target.with_name(target.name + ".edge-partial")
        with open(partial, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, target)

    def put_file(self, source: Path, name: str) -> None:
        shutil.copyfile(source, self._find(name) or self.root / name)

    def put_tree(self, source: Path, name: str) -> None:
        old = self._find(name)
        if old is not None:
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        # copyfile only: FAT keeps neither modes nor owners, and copying them fails there.
        shutil.copytree(source, self.root / name, copy_function=shutil.copyfile)

    def cluster_bytes(self) -> int:
        return os.statvfs(self.root).f_bsize

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    def used_bytes(self, name: str) -> int:
        path = self._find(name)
        return 0 if path is None else clusters_for(path, self.cluster_bytes())
