"""MkDocs hooks (mkdocs.yml, `hooks:`): the reference pages, written from the code at every build.

- `reference/cli.md`: every command and subcommand of `edge` from the argparse parsers that
  `edge.cli.build_parser` assembles: its usage, its options and their help texts.
- `reference/configuration.md`: every setting of `edge.config.Settings` (the pydantic-settings
  models): dotted key, type and range, default, whether `config/set` may
  change it (`edge.device.overlay.SETTABLE`), and its `Field(description=...)`.

Neither is a file in the repository, so neither can drift from the code. One more hook lets the
hand-written pages keep GitHub's table syntax: see `on_page_markdown`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # a checkout whose package is not installed still builds its own code
    sys.path.insert(0, str(REPO))

CLI_PAGE = "reference/cli.md"
CONFIG_PAGE = "reference/configuration.md"
USAGE_COLUMNS = 80  # argparse wraps usage to the terminal's width: fixed, so every build is the same
COMMON_OPTIONS = {"config", "verbose"}  # every subcommand repeats them (edge.cli.add_common_options)


# -- MkDocs events ----------------------------------------------------------------------------------


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the two generated pages before the nav is built (mkdocs.yml lists them)."""
    for uri, text in ((CLI_PAGE, cli_reference()), (CONFIG_PAGE, config_reference())):
        files.append(File.generated(config, uri, content=text))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    r"""GitHub needs a pipe inside a code span in a table cell escaped (`a\|b`), Python-Markdown
    shows the backslash (it never splits a cell inside a code span): drop it there, so the pages
    read right in both."""

    def code_spans(line: str) -> str:
        return re.sub(r"`[^`]*`", lambda m: m.group(0).replace("\\|", "|"), line)

    return "\n".join(code_spans(line) if line.startswith("|") else line for line in markdown.split("\n"))


# -- text helpers -----------------------------------------------------------------------------------


def cell(text: str) -> str:
    """`text` (plain, possibly with `code` spans) as one Markdown table cell: one line, and nothing
    in it read as HTML, emphasis or a column break."""
    parts = re.split(r"(`[^`]*`)", " ".join(text.split()))
    escaped = []
    for part in parts:
        if not part.startswith("`"):
            for char, escape in (("\\", "\\\\"), ("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
                part = part.replace(char, escape)
            for char in "*|[]":
                part = part.replace(char, "\\" + char)
        escaped.append(part)
    return "".join(escaped)


def code(text: str) -> str:
    assert "`" not in text, text
    return f"`{text}`"


# -- the CLI reference -------------------------------------------------------------------------------


@contextmanager
def usage_width(columns: int) -> Iterator[None]:
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(columns)
    try:
        yield
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before


def subcommand_helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each subcommand's one-line help, as its parent lists it."""
    return {
        choice.dest: choice.help or ""
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for choice in action._choices_actions
    }


def usage(parser: argparse.ArgumentParser) -> str:
    formatter = parser._get_formatter()
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


QUIET_ACTIONS = (
    argparse._StoreTrueAction,
    argparse._StoreFalseAction,
    argparse._StoreConstAction,
    argparse._CountAction,
    argparse._VersionAction,
)


def option_rows(parser: argparse.ArgumentParser, top: bool) -> list[str]:
    """One table row per option or positional argument (help and, below the top, the common options
    left out)."""
    formatter = parser._get_formatter()
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        if not top and action.dest in COMMON_OPTIONS:
            continue
        if action.option_strings:
            invocation = formatter._format_action_invocation(action)
        else:
            invocation = formatter._format_args(action, formatter._get_default_metavar_for_positional(action))
        meaning = formatter._expand_help(action) if action.help else ""
        if action.option_strings and action.required:
            meaning = f"required; {meaning}" if meaning else "required"
        default = action.default
        shown = (
            ""
            if isinstance(action, QUIET_ACTIONS) or default in (None, argparse.SUPPRESS, [], "") or "default" in meaning
            else " ".join(map(str, default))
            if isinstance(default, list | tuple)
            else str(default)
        )
        rows.append(f"| {code(invocation)} | {cell(meaning)} | {code(shown) if shown else ''} |")
    return rows


def command_section(path: tuple[str, ...], parser: argparse.ArgumentParser, help_line: str) -> str:
    name = " ".join(("edge", *path))
    out = [f"{'#' * min(2 + max(len(path) - 1, 0), 6)} {name}", ""]
    if help_line:
        out += [cell(help_line[0].upper() + help_line[1:]) + ("" if help_line.endswith((".", "?", ")")) else "."), ""]
    if parser.description:
        out += [cell(parser.description), ""]
    out += ["```text", usage(parser), "```", ""]
    rows = option_rows(parser, top=not path)
    if rows:
        out += ["| option | meaning | default |", "|---|---|---|", *rows, ""]
    subs = subcommand_helps(parser)
    if subs:
        out += ["Subcommands:", ""]
        for sub, text in subs.items():
            anchor = "-".join(("edge", *path, sub))
            out.append(f"- [{name} {sub}](#{anchor}): {cell(text)}")
        out.append("")
    return "\n".join(out)


def cli_reference() -> str:
    from edge.cli import build_parser, command_parsers

    with usage_width(USAGE_COLUMNS):
        root = build_parser()
        parsers = {(): root, **dict(command_parsers(root))}
        sections = [
            command_section(path, parser, subcommand_helps(parsers[path[:-1]]).get(path[-1], "") if path else "")
            for path, parser in parsers.items()
        ]
    head = f"""# CLI reference

Generated from the argparse parsers of `edge.cli` when this site was built: every command and
subcommand, its usage and its options, as `edge COMMAND --help` prints them.
[Commands](../commands.md) says what each is for; every command also takes the options of `edge`
below (`--config`, `-v`), before or after the subcommand (left out of each command's table).
There are {len(parsers) - 1} commands and subcommands.
"""
    return head + "\n" + "\n".join(sections)


# -- the configuration reference ----------------------------------------------------------------------

TYPE_NAMES = {int: "integer", float: "number", str: "string", bool: "boolean", Path: "path"}


def type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Annotated:
        return type_name(get_args(annotation)[0])
    if origin is Literal:
        return "one of " + ", ".join(code(json.dumps(value)) for value in get_args(annotation))
    if origin in (Union, types.UnionType):
        kinds = [type_name(a) for a in get_args(annotation) if a is not type(None)]
        optional = type(None) in get_args(annotation)
        return " or ".join(kinds) + (", or unset" if optional else "")
    return TYPE_NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def limits(metadata: list[Any]) -> list[str]:
    """The range and pattern pydantic checks (annotated_types' Gt, Ge, Lt, Le, MinLen; a pattern)."""
    found = []
    for item in metadata:
        for attribute, text in (("gt", "> {}"), ("ge", "≥ {}"), ("lt", "< {}"), ("le", "≤ {}")):
            if getattr(item, attribute, None) is not None:
                found.append(text.format(getattr(item, attribute)))
        if getattr(item, "min_length", None):
            found.append(f"at least {item.min_length} character{'s' if item.min_length > 1 else ''}")
        if getattr(item, "pattern", None):
            found.append(f"matches {code(item.pattern)}")
    return found


def default_text(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, Path):
        value = str(value)
    return code(json.dumps(value))


def config_rows(section: str, model: Any, settable: frozenset[str]) -> Iterator[str]:
    for name, field in model.model_fields.items():
        key = f"{section}.{name}"
        kind = "; ".join([type_name(field.annotation), *limits(field.metadata)])
        remote = "yes" if key in settable else "no"
        description = field.description or ""
        yield f"| {code(key)} | {cell(kind)} | {default_text(field.default)} | {remote} | {cell(description)} |"


def config_reference() -> str:
    from edge.config import Settings
    from edge.device.overlay import SETTABLE

    out = [
        """# Configuration reference

Generated from the pydantic-settings models of `edge/config.py` (`edge.config.Settings`) when this
site was built: every key, its type and range, default, whether a signed `config/set` may change
it ([Remote configuration](../fleet.md#remote-configuration)) and what it means. Where the
settings come from, in which order, and how errors are reported:
[Configuration](../device.md#configuration); `edge config show` prints each value in force and
its source.

In the device's TOML file a key `match.threshold` is `threshold = ...` in the table `[match]`; in
the environment it is `EDGE_MATCH__THRESHOLD` (`EDGE_<SECTION>__<KEY>`). A default "unset" is
resolved by the device where the meaning says so (the manifest's models, the calibrated
operating point).
""",
    ]
    for section, field in Settings.model_fields.items():
        model = field.annotation
        out += [f"## {section}", ""]
        if field.description:
            out += [cell(field.description[0].upper() + field.description[1:]) + ".", ""]
        out += [
            "| key | type | default | remote | meaning |",
            "|---|---|---|---|---|",
            *config_rows(section, model, SETTABLE),
            "",
        ]
    return "\n".join(out)
