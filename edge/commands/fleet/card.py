"""`edge fleet card`: a bundle onto a Raspberry Pi card already written and mounted on this computer."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.central.fleet.card import prepare_card


def run(args: argparse.Namespace) -> int:
    applied = prepare_card(args.boot, args.bundle)
    hooked = "hooked" if applied.newly_hooked else "already hooked"
    where = f"{applied.hooked_file} ({applied.release})"
    print(f"{args.boot}: bundle and edge-firstboot.sh copied, {hooked} in {where}; eject the card")
    return 0


def add_verb(verbs) -> None:
    p = verbs.add_parser(
        "card", help="a bundle that installs itself at first boot onto a mounted Raspberry Pi card's boot partition"
    )
    p.add_argument(
        "--boot",
        type=Path,
        required=True,
        metavar="PATH",
        help="where the card's boot partition (bootfs) is mounted, e.g. /media/$USER/bootfs",
    )
    p.add_argument(
        "--bundle", type=Path, required=True, metavar="DIR|TAR", help="the bundle of edge fleet provision --board pi"
    )
    p.set_defaults(func=run)
