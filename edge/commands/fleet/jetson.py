"""`edge fleet jetson-rootfs`: a Jetson's bundle and its first-boot unit into NVIDIA's BSP rootfs/."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.central.fleet.jetson import place

FLASH = "sudo ./tools/kernel_flash/l4t_initrd_flash.sh ... jetson-orin-nano-devkit internal"


def run(args: argparse.Namespace) -> int:
    placed = place(args.l4t, args.bundle, replace=args.replace)
    where = placed.stage.relative_to(args.l4t)
    instead = " (instead of the one placed before)" if placed.replaced else ""
    print(
        f"{args.l4t}: the bundle of {placed.device} placed in {where}{instead}, edge-firstboot.service enabled; "
        f"now flash: {FLASH} (docs/pages/fleet.md, Flash a Jetson)"
    )
    return 0


def add_verb(verbs) -> None:
    p = verbs.add_parser(
        "jetson-rootfs",
        help="a bundle that installs itself at first boot into a Jetson BSP's rootfs/, before l4t_initrd_flash.sh",
    )
    p.add_argument(
        "--l4t",
        type=Path,
        required=True,
        metavar="Linux_for_Tegra",
        help="the BSP folder (Jetson Linux unpacked, sample rootfs in rootfs/, apply_binaries.sh run)",
    )
    p.add_argument(
        "--bundle", type=Path, required=True, metavar="DIR|TAR", help="from edge fleet provision --board jetson"
    )
    p.add_argument(
        "--replace", action="store_true", help="replace a bundle placed there before (another device's, or a newer one)"
    )
    p.set_defaults(func=run)
