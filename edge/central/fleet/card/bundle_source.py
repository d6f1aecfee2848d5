"""The bundle to put on a card, from its folder or the `.tar.gz` that `edge fleet provision` writes,
checked to be made for the board it goes on (`bundle.json`'s `board`)."""

from __future__ import annotations

import json
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from edge.central.fleet.card.errors import CardError

MANIFEST = "bundle.json"


@contextmanager
def open_bundle(bundle: Path, board: str) -> Iterator[Path]:
    """The bundle's folder (a tarball is unpacked into a temporary one, removed afterwards)."""
    if bundle.is_dir():
        yield _checked(bundle, bundle, board)
        return
    if not bundle.is_file():
        raise CardError(f"--bundle {bundle}: no such folder or file (the folder or .tar.gz of edge fleet provision)")
    with tempfile.TemporaryDirectory(prefix="edge-bundle.") as scratch:
        yield _checked(_unpack(bundle, Path(scratch)), bundle, board)


def _unpack(tarball: Path, into: Path) -> Path:
    """The one top folder of the tarball, unpacked; links and paths outside it are refused."""
    try:
        with tarfile.open(tarball, "r:*") as tar:
            members = tar.getmembers()
            tops = {PurePosixPath(m.name).parts[0] for m in members if m.name not in ("", ".")}
            for m in members:
                path = PurePosixPath(m.name)
                if path.is_absolute() or ".." in path.parts or not (m.isfile() or m.isdir()):
                    raise CardError(f"--bundle {tarball}: member {m.name} is not a plain file inside the bundle")
            if len(tops) != 1:
                raise CardError(f"--bundle {tarball}: not one bundle folder inside (found {len(tops)} top entries)")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(into, filter="data")
            else:  # Python 3.10 before 3.10.12: the members were checked above
                tar.extractall(into)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise CardError(f"--bundle {tarball}: not a readable tarball ({' '.join(str(e).split())})") from None
    return into / tops.pop()


def _checked(folder: Path, given: Path, board: str) -> Path:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise CardError(f"--bundle {given}: no {MANIFEST} in it: not a bundle of edge fleet provision") from None
    except (OSError, ValueError) as e:
        raise CardError(f"--bundle {given}: {MANIFEST} unreadable ({e})") from None
    made_for = manifest.get("board") if isinstance(manifest, dict) else None
    if made_for != board:
        raise CardError(f"--bundle {given}: made for board {made_for!r}, not {board!r}: provision with --board {board}")
    return folder
