"""What every subcommand needs: settings from flags, JSON output, one error type."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edge.config import Settings, load_settings
from edge.device.overlay import OVERLAY_FILE as REMOTE_OVERLAY


class CommandError(Exception):
    """A command cannot do its job; the message is shown to the operator as is."""


def nested_flags(pairs: dict[str, Any]) -> dict[str, Any]:
    """{"camera.source": "x", "mqtt.url": None} -> {"camera": {"source": "x"}}; None means unset."""
    flags: dict[str, Any] = {}
    for dotted, value in pairs.items():
        if value is None:
            continue
        section, key = dotted.split(".")
        flags.setdefault(section, {})[key] = value
    return flags


def config_file(args: argparse.Namespace) -> Path | None:
    """--config, else $EDGE_CONFIG, else none (defaults, environment and flags only)."""
    path = getattr(args, "config", None) or os.environ.get("EDGE_CONFIG")
    return Path(path) if path else None


def settings_from(args: argparse.Namespace, **dotted: Any) -> tuple[Settings, dict[str, Any], Path | None]:
    """Settings for a command: file, remote overlay (in the state folder), environment, flags.

    Returns the settings, the flags as given and the overlay path (for provenance). The state
    folder is read without the overlay first: the overlay may not move it.
    """
    flags = nested_flags(dotted)
    path = config_file(args)
    base = load_settings(path, None, **flags)
    overlay = base.device.state_dir / REMOTE_OVERLAY
    return load_settings(path, overlay, **flags), flags, overlay


def add_verbs(parser: argparse.ArgumentParser, package: str, path: Iterable[str]) -> None:
    """The verbs of a command package (`edge fleet`, `edge trial`): each module in it that defines
    `add_verb(verbs)` adds one, so a verb is added by adding a file."""
    verbs = parser.add_subparsers(dest="verb", required=True)
    for info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        module = importlib.import_module(f"{package}.{info.name}")
        if hasattr(module, "add_verb"):
            module.add_verb(verbs)


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """The labeled-set flags `edge eval` and `edge calibrate` share."""
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--pairs", type=Path, help="labeled pairs CSV (columns of ../shared/data/pairs.csv)")
    source.add_argument(
        "--identities", type=Path, help="labeled image CSV (columns of identities.csv), compared all against all"
    )
    p.add_argument("--root", type=Path, help="folder the CSV's image paths are relative to (default: the CSV's)")
    p.add_argument(
        "--group-column",
        default="group",
        help="demographic group column (pairs: <column>_a and <column>_b; default: group)",
    )
    p.add_argument(
        "--within",
        default="source",
        help="--identities only: compare only images with the same value in this column, when the "
        "file has it (default: source, since one person may carry other labels in other "
        "sources); '-' compares everything",
    )
    p.add_argument("--models", type=Path, help="models folder (default: the bundled models/)")


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))
