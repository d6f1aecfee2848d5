"""`edge config show`: the effective configuration and where each value came from."""

from __future__ import annotations

import argparse

from edge.commands.common import config_file, settings_from
from edge.config import provenance, show


def run_show(args: argparse.Namespace) -> int:
    settings, flags, overlay = settings_from(args)
    print(show(settings, provenance(config_file(args), overlay, **flags)))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("config", help="configuration tools")
    verbs = p.add_subparsers(dest="verb", required=True)
    verbs.add_parser("show", help="print effective values and their sources").set_defaults(func=run_show)
