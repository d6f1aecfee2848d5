"""A first look at a FAT boot sector before mtools sees it.

mtools is lenient: with its boot sector zeroed, a FAT16 partition still reads as an old DOS disk
guessed from the FAT's media byte, and writing to it would damage it further. The fields every FAT
file system needs are checked here; the rest is left to mtools, whose errors are passed on.
"""

from __future__ import annotations

import struct
from pathlib import Path

from edge.central.fleet.card.errors import CardError
from edge.central.fleet.card.partitions import Partition


def check_boot_sector(image: Path, partition: Partition, name: Path | None = None) -> None:
    """Refuse a partition whose boot sector lacks the signature or a sane geometry (`name`: for messages)."""
    with open(image, "rb") as f:
        f.seek(partition.start)
        sector = f.read(512)
    problem = _problem(sector)
    if problem:
        raise CardError(f"{name or image}: boot partition {partition.number} is a damaged FAT file system ({problem})")


def _problem(sector: bytes) -> str | None:
    if len(sector) < 512 or sector[510:512] != b"\x55\xaa":
        return "no boot sector signature"
    bytes_per_sector, per_cluster, reserved, fats = struct.unpack("<HBHB", sector[11:17])
    if bytes_per_sector not in (512, 1024, 2048, 4096):
        return f"{bytes_per_sector} bytes per sector"
    if per_cluster == 0 or per_cluster & (per_cluster - 1):
        return f"{per_cluster} sectors per cluster"
    if reserved == 0 or fats == 0:
        return f"{reserved} reserved sectors, {fats} FATs"
    return None
