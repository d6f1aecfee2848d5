"""The `edge` command line: a parser, one module per subcommand, one place for errors."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import edge.commands
from edge import __version__
from edge.commands.common import CommandError
from edge.config import ConfigError
from edge.device.counters import CountersError
from edge.device.sources import SourceError
from edge.errors import OperatorError
from edge.gallery import GalleryError
from edge.link import LinkError
from edge.vision import FaceCountError, ImageError, ModelError

# Errors that mean "this cannot work as asked": shown as one line, exit status 1.
OPERATOR_ERRORS = (
    CommandError,
    ConfigError,
    CountersError,
    FaceCountError,
    GalleryError,
    ImageError,
    LinkError,
    ModelError,
    OperatorError,
    SourceError,
)


def add_common_options(parser: argparse.ArgumentParser, top: bool) -> None:
    """--config and -v, before or after the subcommand (`edge config show --config F`).

    Subcommands default them to SUPPRESS: one given before the subcommand survives a
    subcommand that does not repeat it, and one given after wins.
    """
    default: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    parser.add_argument("--config", type=Path, help="device config file, TOML (default: $EDGE_CONFIG)", **default)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging", **default)


def command_parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every subcommand's parser with its path, nested verbs included (`("gallery", "list")`)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield (*path, name), child
                yield from command_parsers(child, (*path, name))


def invoked_command(argv: Sequence[str]) -> str | None:
    """The subcommand `argv` names, read without a parser: its first word that is neither an
    option nor the value of --config."""
    words = iter(argv)
    for word in words:
        if word == "--config":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or, for a run of command `only`, that command's parser with the
    others as bare names: a command's module (and what it imports) is loaded only when it runs,
    so `edge run` loads no central or bench code."""
    parser = argparse.ArgumentParser(prog="edge", description="Edge face-matching appliance")
    parser.add_argument("--version", action="version", version=f"edge {__version__}")
    add_common_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True)
    names = sorted(info.name for info in pkgutil.iter_modules(edge.commands.__path__) if info.name != "common")
    for name in names:
        if only in names and name != only:
            sub.add_parser(name)
            continue
        module = importlib.import_module(f"edge.commands.{name}")
        if hasattr(module, "add_parser"):  # one module per subcommand, named as it; helpers have none
            module.add_parser(sub)
    for _, child in command_parsers(parser):
        add_common_options(child, top=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(invoked_command(argv)).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Alembic (the trial database's migrations) logs every plugin and step at INFO: noise to an operator.
    logging.getLogger("alembic").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        return args.func(args)
    except OPERATOR_ERRORS as e:
        print(f"edge {args.command}: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `edge ... | head`: the reader left; no traceback for it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
