"""A FAT partition inside a card image file, read and written with GNU mtools at its byte offset.

mtools (`mcopy`, `mdir`, ...; Debian's `mtools`, Homebrew's `mtools`) works on the image as an
ordinary file, `IMAGE@@OFFSET`: no loop device, no mount, no root. It only ever writes inside the
file system it was pointed at, so the rest of the image stays as it was.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from edge.central.fleet.card.errors import CardError

MISSING = (
    "mtools not found (mcopy, mdir): install it (Debian, Ubuntu: apt-get install mtools; macOS: brew install mtools)"
)


def _environment() -> dict[str, str]:
    # Skip mtools' floppy geometry checks (Raspberry Pi images fail them harmlessly); a boot sector
    # that is not FAT still fails. No configuration file may remap drives under us.
    return {**os.environ, "MTOOLS_SKIP_CHECK": "1", "MTOOLSRC": os.devnull}


def require_mtools() -> None:
    """Refuse early, before a base image is copied, on a computer without mtools."""
    if shutil.which("mcopy") is None:
        raise CardError(MISSING)


class ImageBoot:
    """The FAT file system starting `offset` bytes into `image`."""

    def __init__(self, image: Path, offset: int, label: str | None = None):
        require_mtools()
        self.drive = f"{image}@@{offset}"
        self.label = label or f"{image} (boot partition at byte {offset})"
        self._top = self._listing()

    def describe(self) -> str:
        return self.label

    def _run(self, tool: str, *args: str) -> str:
        done = subprocess.run(
            [tool, "-i", self.drive, *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env=_environment(),
        )
        if done.returncode != 0:
            said = "; ".join(line.strip() for line in done.stderr.splitlines() if line.strip())
            raise CardError(f"{self.label}: not a readable FAT file system ({tool}: {said or 'failed'})")
        return done.stdout

    def _listing(self) -> dict[str, str]:
        """Top-level names, lower case -> as stored; also proves the file system readable."""
        self._run("mdir", "::/")
        names = [line.removeprefix("::/").rstrip("/") for line in self._run("mdir", "-b", "-a", "::/").splitlines()]
        return {n.lower(): n for n in names if n}

    def _name(self, name: str) -> str | None:
        return self._top.get(name.lower())

    def read_text(self, name: str) -> str | None:
        stored = self._name(name)
        if stored is None:
            return None
        with tempfile.TemporaryDirectory() as scratch:
            copy = Path(scratch) / "file"
            self._run("mcopy", "-n", f"::/{stored}", str(copy))
            if copy.is_dir():
                return None
            with open(copy, encoding="utf-8", newline="") as f:
                return f.read()

    def write_text(self, name: str, text: str) -> None:
        with tempfile.TemporaryDirectory() as scratch:
            copy = Path(scratch) / "file"
            with open(copy, "w", encoding="utf-8", newline="") as f:
                f.write(text)
            self.put_file(copy, name)

    def put_file(self, source: Path, name: str) -> None:
        self._run("mcopy", "-o", "-D", "o", str(source), f"::/{self._name(name) or name}")
        self._top[name.lower()] = self._name(name) or name

    def put_tree(self, source: Path, name: str) -> None:
        old = self._name(name)
        if old is not None:
            self._run("mdeltree", f"::/{old}")
        self._run("mcopy", "-s", "-o", "-D", "o", str(source), f"::/{name}")
        self._top[name.lower()] = name

    def _info(self) -> dict[str, int]:
        found = dict(re.findall(r"^(sector size|cluster size): (\d+)", self._run("minfo"), re.MULTILINE))
        return {k: int(v) for k, v in found.items()}

    def cluster_bytes(self) -> int:
        info = self._info()
        return info["sector size"] * info["cluster size"]

    def free_bytes(self) -> int:
        match = re.search(r"([\d ]+) bytes free", self._run("mdir", "::/"))
        if match is None:
            raise CardError(f"{self.label}: mdir did not say how many bytes are free")
        return int(match.group(1).replace(" ", ""))

    def used_bytes(self, name: str) -> int:
        stored = self._name(name)
        if stored is None:
            return 0
        last = self._run("mdu", "-s", f"::/{stored}").split()
        return int(last[-1]) * self.cluster_bytes()
