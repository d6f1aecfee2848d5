"""Cards for Raspberry Pi boards: a provisioned bundle and the first-boot script on the boot
partition, hooked the way the image's release runs things at first boot.

`write_image` makes a card image file offline (mtools on the image, no root); `prepare_card` does
the same to a card already written and mounted. Both go through `apply.apply` on a `BootPartition`.
"""

from __future__ import annotations

from pathlib import Path

from edge.central.fleet.card.apply import Applied, apply
from edge.central.fleet.card.boot import FolderBoot
from edge.central.fleet.card.bundle_source import open_bundle
from edge.central.fleet.card.errors import CardError
from edge.central.fleet.card.image import BOARD, write_image


def prepare_card(boot: Path, bundle: Path) -> Applied:
    """Hook and copy onto the boot partition mounted at `boot`; checks everything before writing."""
    partition = FolderBoot(boot)
    with open_bundle(bundle, BOARD) as folder:
        return apply(partition, folder)


__all__ = ["Applied", "CardError", "prepare_card", "write_image"]
