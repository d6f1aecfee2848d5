"""`edge fleet image`: a per-device card image written offline from a Raspberry Pi OS base image.

The base (raw, or `.xz` as downloaded and as Imager keeps it) is copied, decompressing on the way,
to a file beside `--out`; the boot partition is found in its partition table and written with
mtools; the file is renamed to `--out` only once all of it has worked, so a refusal leaves nothing.
"""

from __future__ import annotations

import lzma
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from edge.central.fleet.card.apply import Applied, apply
from edge.central.fleet.card.bootsector import check_boot_sector
from edge.central.fleet.card.bundle_source import open_bundle
from edge.central.fleet.card.errors import CardError
from edge.central.fleet.card.mtools import ImageBoot, require_mtools
from edge.central.fleet.card.partitions import boot_partition

BOARD = "pi"
CHUNK = 4 * 1024 * 1024


def write_image(base: Path, bundle: Path, out: Path) -> Applied:
    """Write `out`: `base` with `bundle` and the first-boot script on its boot partition, hooked."""
    _check_paths(base, out)
    with open_bundle(bundle, BOARD) as folder:
        fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
        partial = Path(name)
        try:
            with os.fdopen(fd, "wb") as target:
                _copy_base(base, target)
            part = boot_partition(partial, base)
            check_boot_sector(partial, part, base)
            applied = apply(ImageBoot(partial, part.start, f"{base}: boot partition {part.number}"), folder)
            os.replace(partial, out)
        finally:
            partial.unlink(missing_ok=True)
    return applied


def _check_paths(base: Path, out: Path) -> None:
    require_mtools()
    if not base.is_file():
        raise CardError(f"--base {base}: no such file (give a Raspberry Pi OS image, .img or .img.xz)")
    if not os.access(base, os.R_OK):
        raise CardError(f"--base {base}: not readable by you")
    if out.exists():
        raise CardError(f"--out {out} exists: give a new file (the base image is never changed in place)")
    if not out.parent.is_dir():
        raise CardError(f"--out {out}: its folder {out.parent} does not exist")


def _copy_base(base: Path, target: BinaryIO) -> None:
    """The base's bytes into `target`, decompressing an .xz one as a stream. Runs of zeros are
    skipped, not written: the card image is sparse where the base's free space is."""
    try:
        opener = lzma.open if base.suffix == ".xz" else open
        with opener(base, "rb") as source:
            while chunk := source.read(CHUNK):
                if chunk.count(0) == len(chunk):
                    target.seek(len(chunk), os.SEEK_CUR)
                else:
                    target.write(chunk)
            target.truncate()
    except (lzma.LZMAError, EOFError) as e:
        raise CardError(f"--base {base}: not a readable .xz file ({e})") from None
    except OSError as e:
        raise CardError(f"--base {base} to {target.name}: {e.strerror or e}") from None
