"""Where the boot partition of a card image starts, read from its partition table (MBR or GPT).

Raspberry Pi OS images have an MBR with the FAT boot partition (`bootfs`, type 0x0c) first and
ext4 root second; GPT is read too, for boards whose images use it. Sectors are 512 bytes, as on
every SD card image.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from pathlib import Path

from edge.central.fleet.card.errors import CardError

SECTOR = 512
# MBR partition types of FAT file systems: FAT12, FAT16 (<32M, CHS, LBA), FAT32 (CHS, LBA), EFI.
FAT_TYPES = {0x01, 0x04, 0x06, 0x0B, 0x0C, 0x0E, 0xEF}
GPT_PROTECTIVE = 0xEE
# GPT type GUIDs of FAT partitions: EFI system, Microsoft basic data (Linux tools use it for FAT).
FAT_GUIDS = {uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b"), uuid.UUID("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7")}


@dataclass(frozen=True)
class Partition:
    """One partition: its number in the table (from 1), where it starts and how long it is, in bytes."""

    number: int
    start: int
    size: int
    fat: bool

    @property
    def end(self) -> int:
        return self.start + self.size


def boot_partition(image: Path, name: Path | None = None) -> Partition:
    """The image's first FAT partition, checked to lie inside the file; messages say `name` (the base
    image a copy was made from) where given."""
    name = name or image
    with open(image, "rb") as f:
        mbr = f.read(SECTOR)
        partitions = _gpt(f, name) if _is_protective(mbr) else _mbr(mbr, name)
    boot = next((p for p in partitions if p.fat), None)
    if boot is None:
        raise CardError(f"{name}: no FAT partition in its partition table (a card image has its boot partition first)")
    size = image.stat().st_size
    if boot.end > size:
        raise CardError(
            f"{name}: partition {boot.number} ends at byte {boot.end}, past the file's {size}: a truncated image?"
        )
    return boot


def _check_signature(mbr: bytes, image: Path) -> None:
    if len(mbr) < SECTOR or mbr[510:512] != b"\x55\xaa":
        raise CardError(f"{image}: no partition table (no MBR signature in its first sector): not a card image")


def _entries(mbr: bytes) -> list[tuple[int, int, int]]:
    """(type, first sector, sectors) of the four primary MBR entries, empty ones left out."""
    rows = []
    for i in range(4):
        entry = mbr[446 + 16 * i : 446 + 16 * (i + 1)]
        kind = entry[4]
        first, count = struct.unpack("<II", entry[8:16])
        if kind and count:
            rows.append((kind, first, count))
    return rows


def _is_protective(mbr: bytes) -> bool:
    return len(mbr) == SECTOR and mbr[510:512] == b"\x55\xaa" and any(k == GPT_PROTECTIVE for k, _, _ in _entries(mbr))


def _mbr(mbr: bytes, image: Path) -> list[Partition]:
    _check_signature(mbr, image)
    return [
        Partition(number=i + 1, start=first * SECTOR, size=count * SECTOR, fat=kind in FAT_TYPES)
        for i, (kind, first, count) in enumerate(_entries(mbr))
    ]


def _gpt(f, image: Path) -> list[Partition]:
    f.seek(SECTOR)
    header = f.read(92)
    if header[:8] != b"EFI PART":
        raise CardError(f"{image}: a protective MBR but no GPT header in sector 1: a damaged partition table")
    entries_lba, count, entry_size = struct.unpack("<QII", header[72:88])
    f.seek(entries_lba * SECTOR)
    table = f.read(count * entry_size)
    partitions = []
    for i in range(count):
        entry = table[i * entry_size : (i + 1) * entry_size]
        if len(entry) < 56 or entry[:16] == bytes(16):
            continue
        first, last = struct.unpack("<QQ", entry[32:48])
        kind = uuid.UUID(bytes_le=entry[:16])
        partitions.append(Partition(i + 1, first * SECTOR, (last - first + 1) * SECTOR, kind in FAT_GUIDS))
    return partitions
