"""`edge fleet image`: a card image for one Raspberry Pi, written offline from a Raspberry Pi OS image."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.central.fleet.card import write_image


def run(args: argparse.Namespace) -> int:
    applied = write_image(args.base, args.bundle, args.out)
    hooked = "hooked" if applied.newly_hooked else "already hooked"
    where = f"{applied.hooked_file} ({applied.release})"
    print(f"{args.out}: bundle and edge-firstboot.sh on its boot partition, {hooked} in {where}")
    return 0


def add_verb(verbs) -> None:
    p = verbs.add_parser(
        "image",
        help="a Raspberry Pi card image with a bundle that installs itself at first boot (no root: mtools)",
    )
    p.add_argument(
        "--base",
        type=Path,
        required=True,
        metavar="IMAGE",
        help="Raspberry Pi OS image (.img or .img.xz) with Imager's customisation; it is not changed",
    )
    p.add_argument(
        "--bundle", type=Path, required=True, metavar="DIR|TAR", help="the bundle of edge fleet provision --board pi"
    )
    p.add_argument("--out", type=Path, required=True, metavar="CARD.img", help="the card image to write (a new file)")
    p.set_defaults(func=run)
