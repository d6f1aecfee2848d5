"""`edge fleet provision`: one board's bundle (certificates, config, wheels, install.sh)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.central.fleet.bundle import ARCHES, BOARDS, Request, provision
from edge.central.fleet.folder import FleetDir
from edge.central.fleet.wheels import Target


def run(args: argparse.Namespace) -> int:
    board = BOARDS[args.board]
    request = Request(
        site=args.site,
        device_id=args.device_id,
        broker=args.broker,
        board=args.board,
        target=Target(args.arch or board.arch, args.python_version or board.python_version),
        wheel=args.wheel,
        wheels_from=args.wheels_from,
    )
    tarball = provision(FleetDir(args.fleet), request, args.out)
    print(f"bundle for {args.site}/{args.device_id}: {args.out} and {tarball} (install with: sudo sh install.sh)")
    return 0


def add_verb(verbs) -> None:
    p = verbs.add_parser("provision", help="a board's bundle: device certificate and keys, config, wheels, install.sh")
    p.add_argument("--fleet", type=Path, required=True, help="the fleet folder (edge fleet init)")
    p.add_argument("--site", required=True, help="the device's site (letters, digits, _ . -)")
    p.add_argument("--device-id", required=True, help="the device's id, unique within its site")
    p.add_argument("--broker", required=True, help="mqtts://HOST:PORT as the device reaches the broker")
    p.add_argument(
        "--board", required=True, choices=sorted(BOARDS), help="pi (camera module), jetson (CSI), usb (USB or RTSP)"
    )
    p.add_argument("--out", type=Path, required=True, help="bundle folder to create (and OUT.tar.gz)")
    p.add_argument("--arch", choices=ARCHES, help="the board's CPU (default: aarch64 for pi and jetson, usb x86_64)")
    p.add_argument(
        "--python-version",
        help="the board's system Python (default: pi 3.11, Raspberry Pi OS bookworm; jetson 3.10, JetPack 6; usb 3.11)",
    )
    p.add_argument("--wheel", type=Path, help="the package's wheel (default: built from this checkout)")
    p.add_argument(
        "--wheels-from",
        type=Path,
        metavar="DIR",
        help="take the dependency wheels from DIR (e.g. an earlier bundle's wheels/) instead of downloading them",
    )
    p.set_defaults(func=run)
