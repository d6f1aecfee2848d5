"""`edge fleet init DIR`: a new fleet's CA, central certificate and signing key."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.central.fleet.pki import init_fleet


def run(args: argparse.Namespace) -> int:
    fleet = init_fleet(args.dir)
    print(f"fleet created in {fleet.root}: keep it private (it holds the keys that control every device)")
    return 0


def add_verb(verbs) -> None:
    p = verbs.add_parser("init", help="create a fleet: CA, central tools' certificate, Ed25519 signing key")
    p.add_argument("dir", type=Path, help="the fleet folder to create (must not exist or be empty)")
    p.set_defaults(func=run)
